"""Data: ranked units for the reward model, prompts for GRPO, chats for SFT; reading, checking,
tokenizing, batching and sampling.

The names import lazily (lit_mrrml.lazy): ``import lit_mrrml.data.units`` (or ``.formats``, ``.sources``)
imports neither torch nor Lightning; ``lit_mrrml.data.RubricDataModule`` imports them on first use.
"""

from typing import TYPE_CHECKING

from lit_mrrml.lazy import lazy_exports

_EXPORTS = {
    "BadRecordError": "lit_mrrml.data.sources",
    "EncodedUnit": "lit_mrrml.data.encode",
    "PromptDataModule": "lit_mrrml.data.prompts",
    "RankedUnit": "lit_mrrml.data.units",
    "RankedUnitCollator": "lit_mrrml.data.collate",
    "RubricDataModule": "lit_mrrml.data.datamodule",
    "SFTDataModule": "lit_mrrml.data.sft",
    "UnitDefaults": "lit_mrrml.data.formats",
    "encode_unit": "lit_mrrml.data.encode",
    "parse_unit": "lit_mrrml.data.units",
    "read_units": "lit_mrrml.data.units",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "BadRecordError",
    "EncodedUnit",
    "PromptDataModule",
    "RankedUnit",
    "RankedUnitCollator",
    "RubricDataModule",
    "SFTDataModule",
    "UnitDefaults",
    "encode_unit",
    "parse_unit",
    "read_units",
]

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from lit_mrrml.data.collate import RankedUnitCollator
    from lit_mrrml.data.datamodule import RubricDataModule
    from lit_mrrml.data.encode import EncodedUnit, encode_unit
    from lit_mrrml.data.formats import UnitDefaults
    from lit_mrrml.data.prompts import PromptDataModule
    from lit_mrrml.data.sft import SFTDataModule
    from lit_mrrml.data.sources import BadRecordError
    from lit_mrrml.data.units import RankedUnit, parse_unit, read_units
