"""Every built-in environment is a folder of the same shape: schema file, backend, registered task
generator, example tasks made by that generator, README; and its example tasks pass their own check."""
from __future__ import annotations

import textwrap

import pytest

from reward.validate import validate_files
from tool_envs.registry import BUILTIN_DIR, get_spec, list_envs, task_generator
from tool_envs.tasks import load_tasks

BUILTIN = sorted(p.parent.name for p in BUILTIN_DIR.glob("*/env.*"))


def test_all_nine_builtin_environments_are_folders():
    assert len(BUILTIN) == 9 and set(BUILTIN) <= set(list_envs())


@pytest.mark.parametrize("name", BUILTIN)
def test_folder_shape(name):
    folder = BUILTIN_DIR / name
    spec = get_spec(name)
    assert spec.backend is not None and spec.backend.load_class() is not None
    assert (folder / "README.md").is_file() and (folder / "generate.py").is_file()
    assert spec.generator == f"tool_envs.envs.{name}.generate:generate_tasks"  # registered, not found by name


@pytest.mark.parametrize("name", BUILTIN)
def test_example_tasks_are_the_generators_output(name):
    shipped = load_tasks(BUILTIN_DIR / name / "tasks.jsonl")
    generated = task_generator(name)(len(shipped), seed=0, split="train")
    assert [t.to_dict() for t in generated] == [t.to_dict() for t in shipped]
    assert all(name in t.envs for t in shipped)


def test_example_tasks_pass_their_own_check():
    files = [p for name in BUILTIN for p in (BUILTIN_DIR / name).iterdir() if p.name.startswith(("env.", "tasks."))]
    results = validate_files(files)
    assert [(path, [str(p) for p in problems]) for path, _, problems in results if problems] == []
    assert sum(1 for path, _, _ in results if path.endswith(".jsonl")) == 9


def test_generator_of_an_outside_environment_is_imported_from_its_folder(tmp_path):
    (tmp_path / "backend.py").write_text("class Box:\n    def ping(self):\n        return 'pong'\n")
    (tmp_path / "make.py").write_text(textwrap.dedent('''
        from tool_envs.tasks import Task

        def tasks(n, seed=0, split="train"):
            return [Task.from_dict({"id": f"{split}_{seed}_{i}", "envs": ["box"],
                                    "turns": [[{"role": "user", "content": "ping"}]]}) for i in range(n)]
    '''))
    (tmp_path / "env.yaml").write_text(textwrap.dedent('''
        name: box
        generator: make:tasks
        backend: {class: backend.Box, stateless: true}
        tools:
          - {type: function, function: {name: ping, description: p, parameters: {type: object, properties: {}}}}
    '''))
    gen = task_generator(str(tmp_path / "env.yaml"))
    assert [t.id for t in gen(2, seed=3, split="heldout")] == ["heldout_3_0", "heldout_3_1"]


def test_an_environment_without_generator_says_how_to_fix_it(tmp_path):
    (tmp_path / "env.yaml").write_text(
        "name: bare\ntools:\n  - {type: function, function: {name: f, description: d, parameters: {type: object}}}\n")
    with pytest.raises(ValueError, match="registers no task generator; add `generator: module:function`"):
        task_generator(str(tmp_path / "env.yaml"))
