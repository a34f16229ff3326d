"""How asset values are stored between stages."""
