"""Training a multilabel frame classifier (timm) on the annotations, and using it.

``dataset`` assembles the frames' label vectors and the split (app side, reads the database);
``model`` makes the timm network and loads checkpoints; ``worker`` is the training process
(alone or under torchrun; it never opens the database); ``runner`` starts and watches workers
for the app; ``predict`` runs a trained model over videos and image groups.  The run directory
and file formats between app and worker are in docs/TRAINING.md.  torch and timm are imported
lazily inside functions.
"""
