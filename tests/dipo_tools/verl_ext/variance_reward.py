"""A reward with in-group variance on any policy (CPU smoke tests): a random tiny model fails every real
verifier, so every group is all-wrong and every advantage 0. Score and verdict are the parity of a hash of
the response: distinct sampled responses get independent coin flips."""
import hashlib


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    bit = float(int(hashlib.sha256(solution_str.encode()).hexdigest(), 16) % 2)
    return {"score": bit, "acc": bit}
