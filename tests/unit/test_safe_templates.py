"""Title and description templates: only plain field names; TWITCH_VOD_TYPES parsing."""

from __future__ import annotations

import pytest

from vodarchiver.config import load_settings
from vodarchiver.errors import ConfigError
from vodarchiver.youtube import metadata

UNSAFE = ["{title:d}", "{title.__class__.__mro__}", "{title:>300000000}", "{title!r}",
          "{title[0]}", "{channel:{title}}"]  # fmt: skip


@pytest.mark.parametrize("template", UNSAFE)
def test_unsafe_fields_are_refused_naming_the_field(template: str) -> None:
    """A format spec, conversion, attribute or index access is a ValueError quoting the field."""
    with pytest.raises(ValueError, match="only plain names") as caught:
        metadata.check_template(f"x {template} y")
    assert template[:12] in str(caught.value)


@pytest.mark.parametrize("template", UNSAFE[:3])
@pytest.mark.parametrize("variable", ["YOUTUBE_TITLE_TEMPLATE", "YOUTUBE_DESCRIPTION_TEMPLATE"])
def test_load_settings_names_the_variable_and_the_field(variable: str, template: str) -> None:
    """load_settings refuses the three unsafe templates of the issue, naming variable and field."""
    with pytest.raises(ConfigError) as caught:
        load_settings({"ENV_FILE": "/dev/null", variable: template})
    text = str(caught.value)
    assert variable in text
    assert template[:12] in text


def test_plain_fields_and_literal_braces_still_work() -> None:
    """Plain names, repeated names and doubled braces pass and format as before."""
    text = "{title} {{literal}} {part}/{parts} {title}"
    assert metadata.check_template(text) == text


def test_vod_types_default_and_choices() -> None:
    """TWITCH_VOD_TYPES is archive by default, takes highlight and upload, refuses others."""
    assert load_settings({"ENV_FILE": "/dev/null"}).twitch_vod_types == ("archive",)
    got = load_settings({"ENV_FILE": "/dev/null", "TWITCH_VOD_TYPES": "Archive, highlight,upload"})
    assert got.twitch_vod_types == ("archive", "highlight", "upload")
    with pytest.raises(ConfigError, match="TWITCH_VOD_TYPES"):
        load_settings({"ENV_FILE": "/dev/null", "TWITCH_VOD_TYPES": "archive,clip"})
