"""The built-in metrics, declared as data. Imported once by the registry."""

from __future__ import annotations

from functools import partial

from . import angular, fidelity, intrinsic, whdr
from .registry import HIGHER, LOWER, MetricSpec, register_metric

MIT_PROTOCOL = (
    "MIT Intrinsic (Grosse et al. 2009): linear layers averaged to grey, pixels with mask > 0, estimate rescaled "
    "by its least-squares scalar"
)
LMSE_PROTOCOL = MIT_PROTOCOL + "; 20×20 windows every 10 px, one scalar per window, normalised by Σ GT² in the windows"
DSSIM_PROTOCOL = MIT_PROTOCOL + "; (1 − SSIM) / 2, scikit-image SSIM (7×7, data range 1) averaged over the mask"

_INTRINSIC_LAYERS = {"albedo": "reflectance", "shading": "shading"}

for _label, _role in _INTRINSIC_LAYERS.items():
    _needs = (f"pred:{_role}", f"truth:{_role}", "truth:mask")
    register_metric(MetricSpec(
        name=f"{_label}_mse", title=f"{_label} si-MSE", tasks=("intrinsic",), direction=LOWER, range=(0.0, None),
        needs=_needs, protocol=MIT_PROTOCOL,
        compute=lambda p, t, r=_role: intrinsic.si_mse(t[r], p[r], t["mask"]),
        reference="Grosse et al. 2009",
    ))
    register_metric(MetricSpec(
        name=f"{_label}_lmse", title=f"{_label} LMSE", tasks=("intrinsic",), direction=LOWER, range=(0.0, 1.0),
        needs=_needs, protocol=LMSE_PROTOCOL,
        compute=lambda p, t, r=_role: intrinsic.lmse(t[r], p[r], t["mask"]),
        reference="Grosse et al. 2009",
    ))
    register_metric(MetricSpec(
        name=f"{_label}_dssim", title=f"{_label} DSSIM", tasks=("intrinsic",), direction=LOWER, range=(0.0, 1.0),
        needs=_needs, protocol=DSSIM_PROTOCOL,
        compute=lambda p, t, r=_role: intrinsic.dssim(t[r], p[r], t["mask"]),
    ))

register_metric(MetricSpec(
    name="grosse_lmse", title="LMSE (Grosse score)", tasks=("intrinsic",), direction=LOWER, range=(0.0, 1.0),
    needs=("pred:reflectance", "pred:shading", "truth:reflectance", "truth:shading", "truth:mask"),
    protocol="½ shading LMSE + ½ albedo LMSE — the single score of Grosse et al. 2009; " + LMSE_PROTOCOL,
    compute=lambda p, t: 0.5 * intrinsic.lmse(t["shading"], p["shading"], t["mask"])
    + 0.5 * intrinsic.lmse(t["reflectance"], p["reflectance"], t["mask"]),
    reference="Grosse et al. 2009",
))

for _channels in ("rgb", "y"):
    _protocol = fidelity.Protocol(channels=_channels, data_range=1.0)
    _pre = "sRGB-encoded images in [0, 1], " + _protocol.describe()
    register_metric(MetricSpec(
        name=f"psnr_{_channels}", title=f"PSNR ({_channels.upper()})", tasks=("enhance", "derain"),
        direction=HIGHER, range=(0.0, None), needs=("pred:restored", "truth:target"), unit="dB",
        protocol=_pre, compute=lambda p, t, pr=_protocol: fidelity.psnr(t["target"], p["restored"], pr),
    ))
    register_metric(MetricSpec(
        name=f"ssim_{_channels}", title=f"SSIM ({_channels.upper()})", tasks=("enhance", "derain"),
        direction=HIGHER, range=(-1.0, 1.0), needs=("pred:restored", "truth:target"),
        protocol=_pre + ", scikit-image SSIM (7×7 uniform window)",
        compute=lambda p, t, pr=_protocol: fidelity.ssim(t["target"], p["restored"], pr),
    ))

register_metric(MetricSpec(
    name="angular_error", title="angular error", tasks=("illuminant",), direction=LOWER, range=(0.0, 180.0),
    needs=("pred:illuminant", "truth:illuminant"), unit="°", summary="angular",
    protocol="recovery angular error between raw-RGB illuminants; mean, median, tri-mean, best/worst 25 %",
    compute=lambda p, t: angular.illuminant_error(t["illuminant"], p["illuminant"]),
    reference="Hordley & Finlayson 2006",
))

register_metric(MetricSpec(
    name="whdr", title="WHDR (δ = 0.10)", tasks=("intrinsic",), direction=LOWER, range=(0.0, 1.0),
    needs=("pred:reflectance", "truth:judgements"),
    protocol="IIW human judgements, linear reflectance intensity (mean of RGB), δ = 0.10, weights = darker_score",
    compute=lambda p, t: whdr.whdr(p["reflectance"], t["judgements"], whdr.DELTA),
    reference="Bell, Bala & Snavely 2014",
))

_NORMAL_PROTOCOL = "per-pixel angle between unit normals inside the face mask"


def _normal_stat(p, t, key):
    return angular.normal_errors(t["normals"], p["normals"], t.get("mask"))[key]


register_metric(MetricSpec(
    name="normal_mean", title="normal error (mean)", tasks=("face",), direction=LOWER, range=(0.0, 180.0),
    needs=("pred:normals", "truth:normals"), unit="°", protocol=_NORMAL_PROTOCOL,
    compute=partial(_normal_stat, key="mean"),
))
for _threshold in (20, 25, 30):
    register_metric(MetricSpec(
        name=f"normal_under{_threshold}", title=f"normals < {_threshold}°", tasks=("face",), direction=HIGHER,
        range=(0.0, 100.0), needs=("pred:normals", "truth:normals"), unit="%", protocol=_NORMAL_PROTOCOL,
        compute=partial(_normal_stat, key=f"under{_threshold}"),
    ))
