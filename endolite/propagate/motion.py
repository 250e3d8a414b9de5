"""Camera motion: an ORB-feature homography between two frames (the "global+flow" hypothesis
pre-aligns the source frame with it before DIS, which catches large camera moves)."""

from __future__ import annotations

import numpy as np

from endolite.propagate.prepare import _Prepared


def _orb_features(prep: _Prepared) -> tuple[np.ndarray, np.ndarray | None]:
    if not prep.features:
        import cv2

        orb = cv2.ORB_create(nfeatures=500, fastThreshold=10)
        keypoints, descriptors = orb.detectAndCompute(prep.grey, None)
        points = np.float32([k.pt for k in keypoints]).reshape(-1, 2)
        prep.features.append((points, descriptors))
    return prep.features[0]


def _homography(src: _Prepared, dst: _Prepared) -> np.ndarray | None:
    """Homography (3, 3) mapping src working-res (x, y) to dst, or None when matches are weak."""
    import cv2

    pa, da = _orb_features(src)
    pb, db = _orb_features(dst)
    if da is None or db is None or len(pa) < 10 or len(pb) < 10:
        return None
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(da, db, k=2)
    good = [m for m, n in (p for p in pairs if len(p) == 2) if m.distance < 0.8 * n.distance]
    if len(good) < 12:
        return None
    a = np.float32([pa[m.queryIdx] for m in good])
    b = np.float32([pb[m.trainIdx] for m in good])
    matrix, inliers = cv2.findHomography(a, b, cv2.RANSAC, 4.0, maxIters=500, confidence=0.99)
    if matrix is None or inliers is None or int(inliers.sum()) < 10:
        return None
    det = float(np.linalg.det(matrix[:2, :2]))
    if not 0.25 < det < 4.0 or abs(matrix[2, 0]) + abs(matrix[2, 1]) > 2e-3:
        return None
    return matrix
