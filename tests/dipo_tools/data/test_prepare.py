"""Data preparation: ToolRL rlla-4k, environment tasks and math sources → verl parquet."""
from __future__ import annotations

import json
import pathlib

import pandas as pd
import pytest

from dipo_tools.data.common import DataPrepError, read_records
from dipo_tools.data.env_tasks import prepare_env_tasks
from dipo_tools.data.math import last_boxed, prepare_math
from dipo_tools.data.prepare import main as prepare_main
from dipo_tools.data.toolrl import prepare_toolrl

INVENTORY_TASKS = pathlib.Path(__file__).resolve().parents[3] / "tool_envs" / "envs" / "inventory" / "tasks.jsonl"


def test_toolrl_parquet_split_is_seeded_disjoint_and_complete(tmp_path, toolrl_test_parquet):
    rlla_test = toolrl_test_parquet
    src = read_records(rlla_test)
    out = prepare_toolrl(rlla_test, tmp_path / "a", test_fraction=0.1, seed=31415)
    again = prepare_toolrl(rlla_test, tmp_path / "b", test_fraction=0.1, seed=31415)
    train, test = pd.read_parquet(out["train"]), pd.read_parquet(out["test"])
    assert (len(train), len(test)) == (72, 8)
    assert pd.read_parquet(again["test"]).equals(test)  # same seed, same split

    gts = lambda df: [r["ground_truth"] for r in df["reward_model"]]  # noqa: E731
    assert sorted(gts(train) + gts(test)) == sorted(r["reward_model"]["ground_truth"] for r in src)
    assert not set(r["input"] for r in train["extra_info"]) & set(r["input"] for r in test["extra_info"])

    row = train.iloc[0]
    assert row["data_source"] == "rlla" and row["agent_name"] == "single_turn_agent"
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert row["prompt"][0]["content"] == row["extra_info"]["instruction"]
    assert row["reward_model"]["style"] == "rule"
    assert list(train["extra_info"].map(lambda e: e["index"])) == list(range(72))


def test_toolrl_rows_route_to_the_toolrl_reward(tmp_path, toolrl_test_parquet):
    rlla_test = toolrl_test_parquet
    """The prepared rows reach the ToolRL scorer through verl's compute_score entry point."""
    from reward import compute_score

    out = prepare_toolrl(rlla_test, tmp_path, limit=5)
    for row in pd.read_parquet(out["train"]).itertuples():
        gt = row.reward_model["ground_truth"]
        perfect = compute_score(row.data_source, gt, gt, dict(row.extra_info))
        assert perfect["acc"] == 1.0
        wrong = compute_score(row.data_source, "no tags at all", gt, dict(row.extra_info))
        assert wrong["score"] < perfect["score"]


def test_toolrl_raw_json_and_bad_record(tmp_path):
    raw = [{"instruction": f"sys {i}", "input": f"<user> q{i} </user>", "output": "<think> t </think>\n<response> r </response>"}
           for i in range(4)]
    (tmp_path / "rlla.json").write_text(json.dumps(raw))
    out = prepare_toolrl(tmp_path / "rlla.json", tmp_path / "out")
    df = pd.read_parquet(out["train"])
    assert list(df["prompt"].map(lambda p: p[1]["content"])) == [r["input"] for r in raw]
    assert set(out) == {"train"}

    (tmp_path / "bad.json").write_text(json.dumps([{"instruction": "s", "input": 3, "output": "o"}]))
    with pytest.raises(DataPrepError, match=r"bad.json record 0: field 'input'"):
        prepare_toolrl(tmp_path / "bad.json", tmp_path / "out2")
    with pytest.raises(DataPrepError, match="file not found"):
        prepare_toolrl(tmp_path / "missing.json", tmp_path / "out3")


def test_env_tasks_rows_carry_agent_env_and_task(tmp_path):
    from tool_envs import Task, load_tasks

    out = prepare_env_tasks(INVENTORY_TASKS, tmp_path / "inv.parquet", env="inventory")
    df = pd.read_parquet(out)
    tasks = load_tasks(INVENTORY_TASKS)
    assert len(df) == len(tasks)
    row = df.iloc[1]
    assert row["agent_name"] == "dipo_tool_agent" and row["data_source"] == "tool_env"
    assert row["extra_info"]["env"] == "inventory"
    assert Task.from_dict(json.loads(row["extra_info"]["task"])).to_dict() == tasks[1].to_dict()
    assert row["prompt"][-1]["content"] == tasks[1].turns[0][0]["content"]

    bad = tmp_path / "bad.jsonl"
    bad.write_text(INVENTORY_TASKS.read_text().splitlines()[0] + "\n{not json\n")
    with pytest.raises(DataPrepError, match="bad.jsonl:2"):
        prepare_env_tasks(bad, tmp_path / "x.parquet")


def test_prepared_rows_load_in_verls_dataset(tmp_path, tiny_tokenizer):
    """verl's own RLHFDataset reads what we write (prompt, agent_name, extra_info lifted)."""
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    out = prepare_env_tasks(INVENTORY_TASKS, tmp_path / "inv.parquet", limit=3)
    cfg = OmegaConf.create({"max_prompt_length": 512, "return_raw_chat": True, "cache_dir": str(tmp_path / "c"),
                            "filter_overlong_prompts": True})
    ds = RLHFDataset(data_files=[str(out)], tokenizer=tiny_tokenizer, config=cfg)
    assert len(ds) == 3
    item = ds[0]
    assert item["agent_name"] == "dipo_tool_agent"
    assert json.loads(item["extra_info"]["task"])["id"] == "inventory_train_0_0"


def test_math_sources_local(tmp_path):
    dapo = pd.DataFrame([
        {"data_source": "math_dapo", "prompt": [{"role": "user", "content": f"Solve {i % 3}"}], "ability": "MATH",
         "reward_model": {"ground_truth": str(i % 3), "style": "rule"}, "extra_info": {"index": i}}
        for i in range(9)  # the hub copy repeats problems: 3 distinct here
    ])
    dapo.to_parquet(tmp_path / "dapo.parquet")
    out = prepare_math(str(tmp_path / "dapo.parquet"), tmp_path / "train.parquet", data_source="math_dapo")
    df = pd.read_parquet(out)
    assert len(df) == 3 and list(df["reward_model"].map(lambda r: r["ground_truth"])) == ["0", "1", "2"]
    assert df.iloc[0]["prompt"][0]["content"] == "Solve 0"  # verl-format prompts are kept

    plain = [{"problem": "What is 1+1?", "answer": 2.0}, {"question": "Roots of x^2=4?", "answer": ["2", "-2"]},
             {"problem": "Area?", "solution": "so it is \\boxed{\\frac{1}{2}} units"}]
    (tmp_path / "eval.jsonl").write_text("\n".join(json.dumps(r) for r in plain))
    assert prepare_main(["math", str(tmp_path / "eval.jsonl"), str(tmp_path / "aime.parquet"),
                         "--data-source", "aime24", "--split", "test"]) == 0
    df = pd.read_parquet(tmp_path / "aime.parquet")
    assert list(df["reward_model"].map(lambda r: r["ground_truth"])) == ["2", "2, -2", "\\frac{1}{2}"]
    assert "What is 1+1?" in df.iloc[0]["prompt"][0]["content"] and "Answer:" in df.iloc[0]["prompt"][0]["content"]
    assert set(df["data_source"]) == {"aime24"} and df.iloc[0]["extra_info"]["split"] == "test"

    from reward import compute_score
    assert compute_score("aime24", "so\nAnswer: 2", "2")["acc"] == 1.0

    (tmp_path / "noans.json").write_text(json.dumps([{"problem": "x"}]))
    assert prepare_main(["math", str(tmp_path / "noans.json"), str(tmp_path / "n.parquet"), "--data-source", "m"]) == 2
    with pytest.raises(DataPrepError, match="file not found"):
        prepare_math("./nope.parquet", tmp_path / "n.parquet", data_source="m")


def test_last_boxed_is_brace_balanced():
    assert last_boxed("a \\boxed{1} b \\boxed{\\frac{a}{b}}") == "\\frac{a}{b}"
    assert last_boxed("no box") is None
    assert last_boxed("\\boxed{unclosed") is None


def test_env_tasks_over_long_rendered_prompts_are_dropped_and_counted(tmp_path, qwen_tokenizer, capsys):
    """Length is measured as the runner renders the prompt, tool schemas included (verl's own filter only
    sees the messages); tasks that would be cut in training are dropped and the count is printed."""
    from tool_envs import Task, env_for_task
    from tool_envs.bfcl_train import generate_bfcl_training_tasks
    from tool_envs.runner import rendered_prompt_length

    tasks = generate_bfcl_training_tasks(4, seed=0, scenarios=["message", "files_math"])  # ~1k and ~4.6k tokens
    src = tmp_path / "tasks.jsonl"
    src.write_text("".join(json.dumps(t.to_dict()) + "\n" for t in tasks))
    lengths = [rendered_prompt_length(qwen_tokenizer, env_for_task(t), t) for t in tasks]
    limit = 3000
    assert min(lengths) < limit < max(lengths)
    raw_messages = [len(qwen_tokenizer.apply_chat_template(t.turns[0], tokenize=True)) for t in tasks]
    assert max(raw_messages) < limit  # without the tools every task would pass
    stats: dict = {}
    out = prepare_env_tasks(src, tmp_path / "t.parquet", tokenizer=qwen_tokenizer, max_prompt_length=limit, stats=stats)
    kept = [Task.from_dict(json.loads(e["task"])).id for e in pd.read_parquet(out)["extra_info"]]
    assert kept == [t.id for t, n in zip(tasks, lengths) if n <= limit]
    assert stats == {"written": len(kept), "dropped_long": len(tasks) - len(kept)}

    tok_dir = tmp_path / "tok"
    qwen_tokenizer.save_pretrained(tok_dir)
    assert prepare_main(["tasks", str(src), str(tmp_path / "c.parquet"), "--tokenizer", str(tok_dir),
                         "--max-prompt-length", str(limit)]) == 0
    assert f"wrote {len(kept)} rows, dropped {len(tasks) - len(kept)}" in capsys.readouterr().out
