"""Training: one loop (:mod:`.loop`), one recipe per method (:mod:`.recipes`), export (:mod:`.export`)."""
