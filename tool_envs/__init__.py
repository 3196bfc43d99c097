"""Tool environments from schema files: load, compose, execute calls safely, and describe tasks.

Quick start::

    from tool_envs import load_env, ToolCall
    env = load_env("inventory")                 # a built-in name, a backend class name or a schema file
    ep = env.new_episode({"initial_state": {"inventory": {"stock": {"apple": 2}}}})
    ep.execute([ToolCall("add_stock", {"item": "apple", "quantity": 3})])
    ep.state()

See tool_envs/README.md for the schema format, the coercion policy and the "add your own environment"
tutorial.
"""
from tool_envs.env import Episode, ToolEnv, public_state
from tool_envs.executor import ExecutorConfig, configure_executor
from tool_envs.registry import env_for_task, env_path, get_spec, list_envs, load_env, register_env, set_env_path
from tool_envs.schema import EnvSpec, Limits, SchemaError, load_spec, spec_from_mapping
from tool_envs.tasks import Task, TaskError, load_tasks, save_tasks
from tool_envs.types import ToolCall, ToolResult

__all__ = [
    "EnvSpec",
    "Episode",
    "ExecutorConfig",
    "Limits",
    "SchemaError",
    "Task",
    "TaskError",
    "ToolCall",
    "ToolEnv",
    "ToolResult",
    "configure_executor",
    "env_for_task",
    "env_path",
    "get_spec",
    "list_envs",
    "load_env",
    "load_spec",
    "load_tasks",
    "public_state",
    "register_env",
    "save_tasks",
    "set_env_path",
    "spec_from_mapping",
]
