"""Benchmarks: the papers' tables rebuilt from runs that the job runner trains.

``delta``: Feng et al. (2022) Table 2 / Fig. 3 for the δ family (``hydrolens benchmark``);
``smap``: the Table-2 analogue of Li & Lu (2023) for the VIC parameter learners
(``hydrolens benchmark --preset smap``; a package: plan, run, score, report, benchmark). Both sit
above ``core.jobs``: they plan runs, train the missing ones as jobs, score the evaluated runs and
write a report beside its CSV. What they share: ``runs`` (run names, finding runs, training them
through the job runner, learning curves of epoch checkpoints), ``figures`` (matplotlib, atomic
PNG), ``modis`` (MOD16A2 ET), ``text`` (formatting, Markdown tables, the Jinja2 report templates
of ``templates/``).
"""
