"""Input normalisation for the learners, fitted on the training period and training basins only.

Dynamic inputs are standardised per variable over all (basin, day) values of the training
period; precipitation-like variables are first transformed with log10(sqrt(x) + 0.1), as in the
MHPI dPL code (Feng et al. 2022), because their distributions are strongly skewed. Static
attributes are standardised over the training basins. The statistics are stored with each run
(``normalization.json``) so prediction on new basins uses the training statistics.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

LOG_SQRT_VARIABLES = frozenset({"P"})


def _log_sqrt(x: np.ndarray) -> np.ndarray:
    return np.log10(np.sqrt(np.clip(x, 0.0, None)) + 0.1)


@dataclass
class Normalizer:
    """Per-variable mean/std (after the optional log-sqrt transform).

    Attributes:
        dynamic: name -> {"mean", "std", "transform"} for dynamic inputs (P, T, PET, ...).
        static: name -> {"mean", "std"} for static attributes.
    """

    dynamic: dict[str, dict] = field(default_factory=dict)
    static: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def fit(cls, ds: xr.Dataset, dynamic: list[str], static: list[str], start=None, end=None,
            gappy: tuple[str, ...] = ()) -> "Normalizer":
        """Fit on ``ds.sel(time=slice(start, end))``.

        ``gappy``: dynamic inputs with missing days (an observation such as SMAP used as a
        learner input, Li & Lu 2023's Z): their gaps become 0 after standardising and a mask
        channel (1 = observed) is appended for each (``transform_dynamic``).

        Raises:
            KeyError: a variable is not in ``ds`` (names it).
            ValueError: a variable is constant or all-NaN in the fitting period (names it).
        """
        sub = ds.sel(time=slice(start, end))
        norm = cls()
        for name in dynamic:
            if name not in ds:
                raise KeyError(f"dynamic input {name!r} not in dataset (has {list(ds.data_vars)})")
            v = np.asarray(sub[name].values, dtype=np.float64)
            transform = "log10_sqrt" if name in LOG_SQRT_VARIABLES else "none"
            if transform == "log10_sqrt":
                v = _log_sqrt(v)
            norm.dynamic[name] = {"transform": transform, **_moments(v, name)}
            if name in gappy:
                norm.dynamic[name]["gaps"] = "zero_mask"
        for name in static:
            if name not in ds:
                raise KeyError(f"static attribute {name!r} not in dataset")
            norm.static[name] = _moments(np.asarray(ds[name].values, dtype=np.float64), name)
        return norm

    @property
    def n_columns(self) -> int:
        """Columns of ``transform_dynamic``: one per input plus a mask per gappy input."""
        return len(self.dynamic) + sum(st.get("gaps") == "zero_mask" for st in self.dynamic.values())

    def transform_dynamic(self, ds: xr.Dataset) -> np.ndarray:
        """Normalised dynamic inputs as float32 ``[time, site, n_columns]``: the inputs in order,
        then a mask (1 = observed) for each gappy input, whose gaps are 0.

        Raises:
            ValueError: NaN in an input variable that may not have gaps (names the variable,
                sites and first date).
        """
        cols, masks = [], []
        for name, st in self.dynamic.items():
            v = np.asarray(ds[name].transpose("time", "site").values, dtype=np.float64)
            bad = ~np.isfinite(v)
            if st.get("gaps") == "zero_mask":
                masks.append((~bad).astype(np.float64))
                cols.append(np.where(bad, 0.0, (v - st["mean"]) / st["std"]))
                continue
            if bad.any():
                t_idx, b_idx = np.nonzero(bad)
                basins = sorted({str(ds.site.values[i]) for i in b_idx[:20]})
                raise ValueError(
                    f"input {name!r} has {bad.sum()} missing/non-finite values (basins {basins}, "
                    f"first at {str(ds.time.values[t_idx[0]])[:10]}); the learners need complete "
                    "forcing: choose another period or fill the gaps"
                )
            if st["transform"] == "log10_sqrt":
                v = _log_sqrt(v)
            cols.append((v - st["mean"]) / st["std"])
        return np.stack(cols + masks, axis=-1).astype(np.float32)

    def transform_static(self, ds: xr.Dataset) -> np.ndarray:
        """Normalised static attributes as float32 ``[site, n_static]``."""
        cols = [(np.asarray(ds[n].values, dtype=np.float64) - st["mean"]) / st["std"]
                for n, st in self.static.items()]
        out = np.stack(cols, axis=-1) if cols else np.zeros((ds.sizes["site"], 0))
        if not np.isfinite(out).all():
            bad = [n for n, c in zip(self.static, cols) if not np.isfinite(c).all()]
            raise ValueError(f"static attributes with NaN: {bad}")
        return out.astype(np.float32)

    def to_dict(self) -> dict:
        return {"dynamic": self.dynamic, "static": self.static}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizer":
        return cls(dynamic=dict(d["dynamic"]), static=dict(d["static"]))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def load(cls, path: str | Path) -> "Normalizer":
        """Read ``normalization.json``.

        Raises:
            FileNotFoundError: no such file.
            ValueError: not JSON, or an entry lacks a finite ``mean`` or positive ``std``
                (names the file and the variable).
        """
        path = Path(path)
        if path.exists() and not path.is_file():
            raise ValueError(f"{path}: not a regular file")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path} does not exist (written when training starts)") from None
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(d, dict) or not isinstance(d.get("dynamic"), dict) \
                or not isinstance(d.get("static"), dict):
            raise ValueError(f"{path}: expected an object with 'dynamic' and 'static' statistics")
        for kind in ("dynamic", "static"):
            for name, st in d[kind].items():
                ok = isinstance(st, dict) and all(
                    isinstance(st.get(k), (int, float)) and math.isfinite(st[k]) for k in ("mean", "std"))
                if not ok or st["std"] <= 0:
                    raise ValueError(f"{path}: {kind} statistics of {name!r} need a finite 'mean' and "
                                     f"a positive 'std'; found {st!r}")
        return cls.from_dict(d)


def _moments(v: np.ndarray, name: str) -> dict:
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError(f"{name!r} has no finite values in the fitting period")
    mean, std = float(v.mean()), float(v.std())
    if not math.isfinite(std) or std < 1e-12:
        # constant attribute over the training basins: centre it, leave the scale at 1
        std = 1.0
    return {"mean": mean, "std": std}
