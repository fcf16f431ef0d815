"""resolve_platform: an index gives one image; a single image must match an explicit ask."""

from __future__ import annotations

from pathlib import Path

import pytest
from image_factory import make_image, make_index

from ociforge.errors import InvalidPlatformError
from ociforge.model.platform import Platform
from ociforge.options import Options
from ociforge.stores.locations import Scratch, resolve_platform


def test_a_single_image_of_another_platform_is_refused_naming_both(tmp_path: Path) -> None:
    image = make_image(tmp_path, "one", platform="linux/amd64")
    with pytest.raises(InvalidPlatformError) as refused:
        resolve_platform(image, Options(platform=Platform.parse("linux/arm64")))
    assert refused.value.exit_code == 2
    assert "linux/amd64" in str(refused.value) and "linux/arm64" in str(refused.value)


def test_a_single_image_is_kept_when_it_matches_or_nothing_was_asked(tmp_path: Path) -> None:
    image = make_image(tmp_path, "one", platform="linux/amd64")
    assert resolve_platform(image, Options()) is image  # no --platform: whatever it is
    assert resolve_platform(image, Options(platform=Platform.parse("linux/amd64"))) is image
    assert resolve_platform(image, Options(all_platforms=True)) is image


def test_an_index_gives_the_asked_platform_or_lists_what_it_has(tmp_path: Path) -> None:
    index = make_index(tmp_path)
    arm = resolve_platform(index, Options(platform=Platform.parse("linux/arm64")))
    assert str(arm.platform) == "linux/arm64"  # type: ignore[union-attr]
    assert resolve_platform(index, Options(all_platforms=True)) is index
    with pytest.raises(InvalidPlatformError, match="available: linux/amd64, linux/arm64"):
        resolve_platform(index, Options(platform=Platform.parse("linux/s390x")))


def test_scratch_is_built_for_the_wanted_platform() -> None:
    wanted = Options(platform=Platform.parse("linux/riscv64"))
    image = resolve_platform(Scratch().read(wanted), wanted)
    assert str(image.platform) == "linux/riscv64"  # type: ignore[union-attr]
