"""De-identification of endoscopy frames: field-of-view detection (issue #10)."""
