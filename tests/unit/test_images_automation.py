"""The rewrite of one planned update (images.automation.rewrite_for): re-applied to the file as it
is at commit time, a no-op when the new value is already there, refused when the file changed
shape."""

from __future__ import annotations

import pytest

from gitops_helm.images.automation import rewrite_for
from gitops_helm.images.commit import EditNotApplicable
from gitops_helm.images.model import ReleaseId, ScalarEdit

FILE = b"""\
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata: {name: web, namespace: apps}
spec:
  values:
    image:
      repository: registry.example/web  # keep
      tag: '1.0.0'
    sidecar:
      image: registry.example/side:2.0.0
"""

RELEASE = ReleaseId("apps", "web", 0)
TAG = ScalarEdit(RELEASE, ("spec", "values", "image", "tag"), "1.0.0", "1.1.0")
SIDE = ScalarEdit(
    RELEASE,
    ("spec", "values", "sidecar", "image"),
    "registry.example/side:2.0.0",
    "registry.example/side:2.1.0",
)


def test_the_edit_changes_only_the_scalar() -> None:
    assert rewrite_for([TAG])("f.yaml", FILE) == FILE.replace(b"'1.0.0'", b"'1.1.0'")


def test_an_update_already_made_is_a_no_op_and_a_partly_made_one_is_completed() -> None:
    done = FILE.replace(b"'1.0.0'", b"'1.1.0'")
    assert rewrite_for([TAG])("f.yaml", done) == done
    assert rewrite_for([TAG, SIDE])("f.yaml", done) == done.replace(b"side:2.0.0", b"side:2.1.0")


def test_a_file_that_changed_shape_is_refused_naming_the_value() -> None:
    moved = FILE.replace(b"'1.0.0'", b"'1.0.9'")
    with pytest.raises(EditNotApplicable, match=r"spec\.values\.image\.tag.*now reads '1\.0\.9'"):
        rewrite_for([TAG, SIDE])("f.yaml", moved)
