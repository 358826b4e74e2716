"""Variant registry: names used in configs and the CLI → model settings (Feng et al. 2022, Table 2)."""

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
    """

    name: str
    label: str
    nmul: int
    dynamic: tuple[str, ...] = ()
    use_gamma: bool = False


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("delta1", "δ1", 1),
        Variant("delta_n", "δn", 16),
        Variant("delta_n_beta", "δn(βᵗ)", 16, ("BETA",)),
        Variant("delta_n_gamma", "δn(γᵗ)", 16, ("GAMMA",), True),
        Variant("delta_n_gamma_beta", "δn(γᵗ,βᵗ)", 16, ("BETA", "GAMMA"), True),
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
