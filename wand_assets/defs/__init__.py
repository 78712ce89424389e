"""The Dagster layer: thin assets, resources and checks over the plain libraries in ``wand_assets``."""
