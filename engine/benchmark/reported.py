"""Numbers that papers report (transcribed from ../shared/docs/methods.md), kept apart from what we measure.

They are shown as separate "reported" rows, never ranked with measured ones: they come from other test sets,
other splits and often other metric protocols (noted per row).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReportedResult:
    method: str  # our method name where we have the method, else a label
    dataset_kind: str  # adapter kind the number belongs to
    dataset: str  # the exact data set and split the paper used
    metric: str  # our metric name (values in our units: WHDR as a fraction, angles in degrees)
    value: float
    source: str
    note: str = ""
    statistic: str = "mean"  # for angular metrics: mean, median, trimean, best25, worst25


_MIT_NOTE = ("MIT numbers of later work (colour layers, its own split and scaling): not the Grosse grey protocol "
             "used for the measured rows")
_CGI = "CGIntrinsics (Li & Snavely, ECCV 2018), as reported by later work"

REPORTED: tuple[ReportedResult, ...] = (
    ReportedResult("cgintrinsics", "mit-intrinsic", "MIT test split", "albedo_mse", 0.0167, _CGI, _MIT_NOTE),
    ReportedResult("cgintrinsics", "mit-intrinsic", "MIT test split", "albedo_lmse", 0.0319, _CGI, _MIT_NOTE),
    ReportedResult("cgintrinsics", "mit-intrinsic", "MIT test split", "albedo_dssim", 0.1287, _CGI, _MIT_NOTE),
    ReportedResult("cgintrinsics", "mit-intrinsic", "MIT test split", "shading_mse", 0.0127, _CGI, _MIT_NOTE),
    ReportedResult("cgintrinsics", "mit-intrinsic", "MIT test split", "shading_lmse", 0.0211, _CGI, _MIT_NOTE),
    ReportedResult("cgintrinsics", "mit-intrinsic", "MIT test split", "shading_dssim", 0.1376, _CGI, _MIT_NOTE),
    ReportedResult("cgintrinsics", "iiw", "IIW test split", "whdr", 0.15, "CGIntrinsics (Li & Snavely, ECCV 2018)",
                   "≈ 15 %"),
    ReportedResult("retinexnet", "lol", "LOL eval15", "psnr_rgb", 16.77,
                   "RetinexNet (Wei et al., BMVC 2018), re-measured by later work",
                   "channels/range not stated; SSIM 0.42–0.56 depending on the protocol"),
    ReportedResult("attentive_gan", "raindrop", "Raindrop test_a", "psnr_rgb", 31.6,
                   "Attentive GAN (Qian et al., CVPR 2018)", "paper's own PSNR protocol (≈ 31.6 dB)"),
    ReportedResult("attentive_gan", "raindrop", "Raindrop test_a", "ssim_rgb", 0.92,
                   "Attentive GAN (Qian et al., CVPR 2018)", "paper's own SSIM protocol (≈ 0.92)"),
    *(ReportedResult("dsnet", "color-constancy", dataset, "angular_error", value, "DS-Net (Shi, Loy & Tang, ICCV 2016)",
                     "camera-specific cross-validation on that data set", statistic)
      for dataset, values in (("Gehler-Shi", (1.90, 1.12, 1.33, 0.31, 4.84)), ("NUS-8", (2.24, 1.46, 1.68, 0.48, 6.08)))
      for statistic, value in zip(("mean", "median", "trimean", "best25", "worst25"), values)),
)


def reported_for(dataset_kind: str) -> list[ReportedResult]:
    return [r for r in REPORTED if r.dataset_kind == dataset_kind]
