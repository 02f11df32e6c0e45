"""What a PC boots: the catalog's PC images and the choice among them, for every renderer."""
