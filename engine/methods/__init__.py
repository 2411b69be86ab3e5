"""One file per method. A module is listed here only once its method really works; importing it registers it.

Each method file keeps the same order: paper docstring → building blocks → network / solver →
checkpoint key remap (learned methods) → runner → ``register(MethodSpec(...))``.
"""

METHOD_MODULES: tuple[str, ...] = (
    "engine.methods.jiep",
    "engine.methods.retinexnet",
    "engine.methods.laffont_bazin",
    "engine.methods.weiss",
    "engine.methods.baselines_sequence",
    "engine.methods.cgintrinsics",
    "engine.methods.ma2018",
    "engine.methods.sfsnet",
    "engine.methods.dsnet",
    "engine.methods.intrinseg",
    "engine.methods.attentive_gan",
    "engine.methods.baselines_intrinsic",
    "engine.methods.baselines_illuminant",
    "engine.methods.baselines_identity",
)
