"""Variant registry: names used in configs and the CLI → model settings.

Streamflow (Feng et al. 2022, Table 2): the δ family (``family="delta"``) and the regional
streamflow LSTM baseline (``family="lstm"``). Soil moisture on SMAP cells (Li & Lu 2023): the
parameter learners of the VIC-type model (``family="param"``: ffn_a, lstm_z, paraformer_a,
paraformer_z) and per-cell SCE-UA calibration (``family="calibration"``). They share one name
space, so every command (train, evaluate, predict, benchmark) takes any of them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    """A δ-model variant.

    Attributes:
        name: config/CLI name.
        label: the paper's symbol.
        nmul: default number of HBV components (n).
        dynamic: parameters predicted per day.
        use_gamma: ET-shape exponent γ present.
        nn_recharge: δn(NN_r): a small network replaces the soil-wetness (recharge) equation.
        family: "delta" (g_A + HBV + routing), "lstm" (the LSTM predicts Q directly), "param"
            (a learner gives static θ of ``backbone``) or "calibration" (θ per site: by SCE-UA,
            or the backbone's default θ for ``vic_default``).
        learner: the ``core.nets.learners`` name of a "param" variant.
        backbone: the process model ("hbv" or "vic").
        task: the learning task it is built for ("streamflow" or "soil_moisture").
        calibration: how a "calibration" variant finds θ: "sceua" or "default" (the backbone's
            uncalibrated default θ for every site, the reference run).
    """

    name: str
    label: str
    nmul: int
    dynamic: tuple[str, ...] = ()
    use_gamma: bool = False
    nn_recharge: bool = False
    family: str = "delta"
    learner: str | None = None
    backbone: str = "hbv"
    task: str = "streamflow"
    calibration: str = "sceua"


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("delta1", "δ1", 1),
        Variant("delta_n", "δn", 16),
        Variant("delta_n_beta", "δn(βᵗ)", 16, ("BETA",)),
        Variant("delta_n_gamma", "δn(γᵗ)", 16, ("GAMMA",), True),
        Variant("delta_n_gamma_beta", "δn(γᵗ,βᵗ)", 16, ("BETA", "GAMMA"), True),
        Variant("delta_n_nnr", "δn(NN_r)", 16, nn_recharge=True),
        Variant("lstm", "LSTM", 0, family="lstm"),
        Variant("ffn_a", "FFN_A", 1, family="param", learner="FFN_A", backbone="vic", task="soil_moisture"),
        Variant("lstm_z", "LSTM_Z", 1, family="param", learner="LSTM_Z", backbone="vic", task="soil_moisture"),
        Variant("paraformer_a", "ParaFormer_A", 1, family="param", learner="ParaFormer_A", backbone="vic",
                task="soil_moisture"),
        Variant("paraformer_z", "ParaFormer_Z", 1, family="param", learner="ParaFormer_Z", backbone="vic",
                task="soil_moisture"),
        Variant("sceua", "SCE-UA", 1, family="calibration", backbone="vic", task="soil_moisture"),
        Variant("vic_default", "VIC default θ", 1, family="calibration", backbone="vic", task="soil_moisture",
                calibration="default"),
    )
}


def get_variant(name: str) -> Variant:
    """The variant called ``name``.

    Raises:
        ValueError: unknown name (lists the known ones).
    """
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown model variant {name!r}; known: {', '.join(VARIANTS)}") from None
