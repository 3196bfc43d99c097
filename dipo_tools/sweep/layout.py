"""The files of a job directory: the protocol between the sweep's scheduler and its worker processes.

Its own module so that the scheduler can name them without importing the worker (which loads torch and the
engine: 20 s and 230 MB measured under load, in a process that only launches and watches jobs).
"""
WARMUP_FILE = "warmup.pt"
DONE_FILE = "done.json"
JOB_FILE = "job.json"
LOCK_FILE = ".lock"
EXIT_LOCKED = 75  # another process holds this job
# The report of an output_dir (written by report.py and plots.py, copied by ``--export``).
RUNS_CSV, RESULTS_CSV, PAIRED_CSV, RESULTS_MD = "runs.csv", "results.csv", "paired.csv", "RESULTS.md"
REPORT_FILES = (RESULTS_MD, RESULTS_CSV, PAIRED_CSV, RUNS_CSV)
PLOTS_DIR = "plots"
