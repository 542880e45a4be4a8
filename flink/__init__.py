"""PyFlink jobs of tda-ray (own virtualenv). A package only so that the import contracts can see it: the
jobs run as scripts and import nothing from tda_ray."""
