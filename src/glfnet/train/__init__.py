"""Training, which only ever sees a fold's training data: ``trainer`` (a fold's networks),
``fold`` (what they train on), ``loop`` (the one epoch loop), its steppers ``single`` and
``batched``, ``bnstats``, ``losses``; ``final`` and ``modeldir`` (models for use)."""
