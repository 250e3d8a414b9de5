"""endolite: a labeling workbench for endoscopy video.

The core package never imports streamlit; heavy libraries (torch, timm, segment_anything, cv2)
are imported lazily inside the functions that need them, so ``import endolite`` stays fast.
"""

__version__ = "0.1.0"
