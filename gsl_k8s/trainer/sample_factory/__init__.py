"""The sample-factory trainer backend: Sample Factory 2.1.1 APPO for every role.

`backend` trains a task in segments, each one process running `train`; `model` makes our
`Agent` SF's actor-critic; `env` presents our env families to SF; `demo_loss` adds Phase II's
demo term to SF's learner. The files a segment's experiment directory shares between them:
"""

DEMO_CONFIG = "gsl-demos.json"  # backend -> learner: the demo term's settings
CRASH_FILE = "gsl-learner-crash.txt"  # learner -> backend: the error that stopped it
STATS_FILE = "gsl-stats.jsonl"  # SF runner -> backend: per-iteration progress
STOP_FILE = "gsl-stop"  # backend -> SF runner: stop now, saving a checkpoint
