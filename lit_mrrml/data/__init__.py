"""Data: ranked units for the reward model, prompts for GRPO, chats for SFT; reading, checking,
tokenizing, batching and sampling."""

from lit_mrrml.data.collate import RankedUnitCollator
from lit_mrrml.data.datamodule import RubricDataModule
from lit_mrrml.data.encode import EncodedUnit, encode_unit
from lit_mrrml.data.prompts import PromptDataModule
from lit_mrrml.data.sft import SFTDataModule
from lit_mrrml.data.units import BadRecordError, RankedUnit, parse_unit, read_units

__all__ = [
    "BadRecordError",
    "EncodedUnit",
    "PromptDataModule",
    "RankedUnit",
    "RankedUnitCollator",
    "RubricDataModule",
    "SFTDataModule",
    "encode_unit",
    "parse_unit",
    "read_units",
]
