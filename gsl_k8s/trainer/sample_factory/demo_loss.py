"""Phase II's demo term inside Sample Factory's learner: the one module that patches SF.

Sample Factory 2.1.1 has no hook for an extra loss, so `install()` wraps four methods of
`sample_factory.algo.learning.learner.Learner` (private API: sample-factory is pinned to 2.1.1):

- `_calculate_losses(mb, num_invalids)`, which returns `(action_distribution, policy_loss,
  exploration_loss, kl_old, kl_loss, value_loss, loss_summaries)` and whose sum `_train`
  minimises. The wrapper adds `gsl_k8s.core.losses.demo_loss` to `policy_loss`, on a demo
  minibatch run through `actor_critic.forward_head/forward_core/forward_tail` and
  `action_distribution()`. Its weight is `demo_weight` at update `train_step // (num_epochs *
  num_batches_per_epoch)`; DAPG's max advantage is that of the minibatch's normalized
  advantages, `loss_summaries["adv"]`.
- `_record_summaries(train_loop_vars)`, which builds the fixed set of training stats sent to the
  runner: the wrapper adds `demo_loss` and `demo_weight` to them.
- `load_checkpoint(checkpoints, device)`: SF logs a checkpoint that fails to load and
  trains from scratch; the wrapper makes that a crash (below), so a segment never silently
  restarts its policy.
- `train(batch)`, the learner's entry per batch. SF's event loop logs an exception there and
  carries on, so the run would hang: the wrapper writes the error to `CRASH_FILE` in the
  experiment directory, for the backend to stop the run, and re-raises. It also skips
  batches once `env_steps` reached `cfg.train_for_env_steps`: in asynchronous mode batches
  keep arriving while the run stops, and the budget must not be exceeded.

SF starts its learner with multiprocessing spawn: `install()` must run at the top level of the
entry module (`gsl_k8s.trainer.sample_factory.train`), which the learner process re-imports.
The demo term is on when the experiment directory holds `DEMO_CONFIG` (JSON: store URI,
shard keys, batch size, seed, method, coef, decay, likelihood); demos are loaded lazily, in
the learner.
"""

from __future__ import annotations

import functools
import json
import os
import traceback

import torch
from sample_factory.algo.learning.learner import Learner
from sample_factory.utils.utils import experiment_dir

from gsl_k8s.core.losses import demo_loss, demo_weight
from gsl_k8s.records.demos import demo_batches
from gsl_k8s.seeds import SeedStreams
from gsl_k8s.store import open_store
from gsl_k8s.trainer.sample_factory import CRASH_FILE, DEMO_CONFIG


def learner_demo_loss(learner: Learner, loss_summaries: dict) -> tuple[torch.Tensor, float]:
    """The demo term for the learner's current update and its weight."""
    config, batches = learner.gsl_demos
    cfg = learner.cfg
    iteration = learner.train_step // (cfg.num_epochs * cfg.num_batches_per_epoch)
    max_advantage = float(loss_summaries["adv"].max())
    method, coef, decay = config["method"], config["coef"], config["decay"]
    weight = demo_weight(method, coef, decay, iteration, max_advantage)
    obs, actions, _ = next(batches)
    model = learner.actor_critic
    obs_t = torch.as_tensor(obs, device=learner.device).float()  # as SF feeds the model
    head = model.forward_head({"obs": obs_t})
    rnn_states = torch.zeros(len(obs), model.cfg.rnn_size, device=learner.device)
    core, _ = model.forward_core(head, rnn_states)
    model.forward_tail(core, values_only=False, sample_actions=False)
    actions_t = torch.as_tensor(actions, device=learner.device)
    if actions_t.dim() == 1:  # SF's categorical takes (batch, 1) action indices
        actions_t = actions_t.unsqueeze(-1)
    log_prob = model.action_distribution().log_prob(actions_t)
    return demo_loss(log_prob, weight, config["likelihood"]), weight


def _demos(learner: Learner):
    """(config, minibatch iterator) from the experiment's `DEMO_CONFIG`, or None; loaded once."""
    if not hasattr(learner, "gsl_demos"):
        learner.gsl_demos = None
        path = os.path.join(experiment_dir(learner.cfg), DEMO_CONFIG)
        if os.path.exists(path):
            with open(path) as f:
                config = json.load(f)
            store = open_store(config["store"])
            seed = SeedStreams(config["seed"]).demo_batches(learner.train_step)
            batches = demo_batches(store, config["shards"], config["batch_size"], seed)
            learner.gsl_demos = config, batches
    return learner.gsl_demos


def _with_demo_loss(calculate_losses):
    @functools.wraps(calculate_losses)
    def wrapper(self: Learner, mb, num_invalids: int):
        out = calculate_losses(self, mb, num_invalids)
        if _demos(self) is None:
            return out
        dist, policy_loss, exploration_loss, kl_old, kl_loss, value_loss, summaries = out
        loss, weight = learner_demo_loss(self, summaries)
        self.gsl_demo_stats = {"demo_loss": float(loss.detach()), "demo_weight": weight}
        return dist, policy_loss + loss, exploration_loss, kl_old, kl_loss, value_loss, summaries

    return wrapper


def _with_demo_summaries(record_summaries):
    @functools.wraps(record_summaries)
    def wrapper(self: Learner, train_loop_vars):
        stats = record_summaries(self, train_loop_vars)
        stats.update(getattr(self, "gsl_demo_stats", {}))
        return stats

    return wrapper


def _guarded(train):
    @functools.wraps(train)
    def wrapper(self: Learner, batch):
        if self.env_steps >= self.cfg.train_for_env_steps:
            return None  # the segment's target is reached: the run is stopping
        try:
            return train(self, batch)
        except Exception as err:
            _report_crash(experiment_dir(self.cfg), err)
            raise

    return wrapper


def _report_crash(run_dir: str, err: Exception) -> None:
    with open(os.path.join(run_dir, CRASH_FILE), "w") as f:
        f.write(f"{type(err).__name__}: {err}\n{traceback.format_exc()}")


def _strict(load_checkpoint):
    @functools.wraps(load_checkpoint)
    def wrapper(checkpoints, device):
        state = load_checkpoint(checkpoints, device)
        if checkpoints and state is None:
            err = RuntimeError(f"cannot load checkpoint {checkpoints[-1]} (see the log)")
            _report_crash(os.path.dirname(os.path.dirname(checkpoints[-1])), err)
            raise err
        return state

    return wrapper


def install() -> None:
    """Patch `Learner` (idempotent)."""
    if getattr(Learner, "gsl_patched", False):
        return
    Learner._calculate_losses = _with_demo_loss(Learner._calculate_losses)
    Learner._record_summaries = _with_demo_summaries(Learner._record_summaries)
    Learner.load_checkpoint = staticmethod(_strict(Learner.load_checkpoint))
    Learner.train = _guarded(Learner.train)
    Learner.gsl_patched = True
