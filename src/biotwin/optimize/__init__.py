"""Dynamic optimization of recipes on the collocation model (bolus feeding). Imports the layers below."""
