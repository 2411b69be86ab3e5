"""Shared training: recipes (what a method trains), the loop (how), dataset adapters and augmentation.

``RECIPE_MODULES`` lists the modules that register a :class:`~engine.train.recipe.TrainingRecipe` on import
(add one line per trainable method, like ``engine.methods.METHOD_MODULES``).
"""

RECIPE_MODULES: tuple[str, ...] = (
    "engine.train.cgintrinsics",
    "engine.train.retinexnet_recipe",
    "engine.train.ma2018_recipe",
    "engine.train.sfsnet_recipe",
    "engine.train.dsnet_recipe",
    "engine.train.intrinseg_recipe",
    "engine.train.attentive_gan_recipe",
)
