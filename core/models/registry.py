"""Variant registry: names used in configs and the CLI → model settings (Feng et al. 2022, Table 2).

The δ family (``family="delta"``) and the regional streamflow LSTM baseline (``family="lstm"``)
share the name space, so every command (train, evaluate, predict, benchmark) takes either.
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
        family: "delta" (g_A + HBV + routing) or "lstm" (the LSTM predicts Q directly).
    """

    name: str
    label: str
    nmul: int
    dynamic: tuple[str, ...] = ()
    use_gamma: bool = False
    nn_recharge: bool = False
    family: str = "delta"


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
