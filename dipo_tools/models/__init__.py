"""Model and tokenizer builders (tiny offline presets for CI and the CPU demo)."""
from dipo_tools.models.tiny import (
                                    CHAT_TEMPLATE,
                                    PRESETS,
                                    SPECIAL_TOKENS,
                                    build_tiny_model,
                                    build_tiny_pair,
                                    build_tiny_tokenizer,
)

__all__ = ["CHAT_TEMPLATE", "PRESETS", "SPECIAL_TOKENS", "build_tiny_model", "build_tiny_pair", "build_tiny_tokenizer"]
