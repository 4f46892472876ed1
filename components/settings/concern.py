"""What every concern of the settings is: a frozen pydantic model of flat camelCase keys.

`Settings` (model.py) inherits every concern, so operators keep one flat namespace of keys and
code keeps flat attributes (`settings.db_size`); `Concern.view_of` cuts one concern's values
out of a validated `Settings`, for the component that needs only those.
"""

from __future__ import annotations

from typing import Self, cast

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Concern(BaseModel):
    """Base of every concern model and of `Settings`: frozen, camelCase keys, no unknown key."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )

    @classmethod
    def view_of(cls, settings: Concern) -> Self:
        """This concern's values from `settings` (already validated: not validated again)."""
        values = {name: getattr(settings, name) for name in cls.model_fields}
        # The pydantic mypy plugin types `model_construct` per class, as returning `Concern` here.
        return cast(Self, cls.model_construct(**values))
