"""The experiment schema: one typed, validated `GSLExperiment` for CLI, backends and CRD.

A spec is a Kubernetes object (camelCase keys in YAML). Python code uses the snake_case
field names; `GSLExperiment.model_validate(obj)` accepts the camelCase form.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from gsl_k8s import __version__
from gsl_k8s.core.cost import parse_cpu_quantity
from gsl_k8s.errors import GSLError
from gsl_k8s.layout import ROLES

API_VERSION = "gsl.dev/v1alpha1"
KIND = "GSLExperiment"
IMAGE_UID = 65532  # the user (and group) of the images (docker/*.Dockerfile)
DNS_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"  # a Kubernetes object's name
TRAINER_METRICS_PORT = 9400  # where trainers serve Prometheus /metrics by default
TRAINER_IMAGE = "ghcr.io/gsl-k8s/gsl-trainer"

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
LabelValue = Annotated[str, Field(max_length=63, pattern=DNS_NAME)]  # an object's, as a label


class SpecError(GSLError):
    """A spec that cannot be loaded or does not validate; the message names the field."""

    reason = "InvalidSpec"
    usage = True


class FieldError(ValueError):
    """Raised by cross-field validators to blame one field, given relative to the model."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class EnvSpec(_Model):
    """Which environment family, and which of its variations the experiment covers."""

    family: Literal["forkmaze", "gymnasium", "metaworld", "procgen", "maniskill2", "minigrid"] = (
        Field(
            "forkmaze",
            description="forkmaze: our Fork-Maze; gymnasium: any registered env id, one variation "
            "per reset seed; metaworld, procgen, maniskill2: the paper's benchmarks; minigrid: "
            "MiniGrid and BabyAI (each but forkmaze and gymnasium needs its extra).",
        )
    )
    id: str | None = Field(
        None,
        description="Environment id: required for the gymnasium family; for minigrid, one "
        "MiniGrid or BabyAI id whose level seeds are the variations (or kwargs.ids instead).",
    )
    variations: PositiveInt | list[NonNegativeInt] = Field(
        16, description="A count N (variations 0..N-1) or an explicit list of variation ids."
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for the family's environment."
    )

    @model_validator(mode="after")
    def _check(self) -> EnvSpec:
        if self.family == "gymnasium" and not self.id:
            raise FieldError("id", "required for the gymnasium family (e.g. CartPole-v1)")
        if isinstance(self.variations, list):
            if not self.variations:
                raise FieldError("variations", "must not be empty")
            if len(set(self.variations)) != len(self.variations):
                raise FieldError("variations", "has duplicate ids")
        if self.family == "minigrid":
            self._check_minigrid()
        return self

    def _check_minigrid(self) -> None:
        """One env id (variations: its level seeds) or kwargs.ids (variation i: ids[i])."""
        ids = self.kwargs.get("ids")
        if (self.id is None) == (ids is None):
            raise FieldError(
                "id",
                "minigrid needs either id (one env; variations are its level seeds) or "
                "kwargs.ids (a multi-task set; variation i is ids[i]), not "
                + ("both" if ids is not None else "neither"),
            )
        if ids is None:
            return
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise FieldError("kwargs.ids", "must be a non-empty list of MiniGrid or BabyAI ids")
        if len(set(ids)) != len(ids):
            raise FieldError("kwargs.ids", "has duplicate ids")
        beyond = [v for v in self.variation_ids if v >= len(ids)]
        if beyond:
            raise FieldError(
                "variations",
                f"{beyond[:5]} do not exist: kwargs.ids names {len(ids)} tasks "
                f"(variations 0..{len(ids) - 1})",
            )

    @property
    def variation_ids(self) -> list[int]:
        """The variation ids, in order."""
        if isinstance(self.variations, int):
            return list(range(self.variations))
        return list(self.variations)


class NetworkSpec(_Model):
    """Policy and value network: an encoder followed by separate actor and critic heads."""

    encoder: Literal["auto", "mlp", "impala-cnn"] = Field(
        "auto",
        description="auto: the IMPALA-CNN for (H, W, C) image observations, else an MLP "
        "(separate trunks for actor and critic; the CNN is shared).",
    )
    hidden_sizes: list[PositiveInt] = Field(
        default_factory=lambda: [64, 64], description="MLP hidden layer widths."
    )
    channels: list[PositiveInt] = Field(
        default_factory=lambda: [16, 32, 32], description="IMPALA-CNN channels, one per stage."
    )
    activation: Literal["tanh", "relu"] = Field("tanh", description="MLP activation.")
    initial_log_std: float = Field(
        0.0,
        description="Continuous actions: initial log standard deviation of the Gaussian "
        "policy (a learned, state-independent parameter).",
    )


class SampleFactorySpec(_Model):
    """How the sample-factory backend runs APPO (`trainer.backend: sample-factory`)."""

    serial_mode: bool = Field(
        False, description="Run sampler and learner in one process (CPU CI); else asynchronous."
    )
    workers: PositiveInt = Field(1, description="Rollout worker processes.")
    envs_per_worker: PositiveInt = Field(
        1, description="Vector envs per worker; numEnvs is split evenly across all of them."
    )
    segment_timeout_seconds: PositiveInt = Field(
        600, description="Wall-clock limit of one training segment (evaluation interval)."
    )


class TrainerSpec(_Model):
    """PPO hyperparameters, shared by every role so that both arms train alike.

    The defaults are Stable-Baselines3's (batches of 2048 env steps, 10 epochs of 64-step
    minibatches, learning rate 3e-4, no entropy bonus), with normalized observations and
    rewards: they learn discrete and continuous control alike out of the box."""

    backend: Literal["builtin", "sample-factory"] = Field(
        "builtin",
        description="builtin: our synchronous PPO. sample-factory: Sample Factory 2.1.1 APPO "
        "(install the sample-factory extra or use the -sample-factory trainer image).",
    )
    sample_factory: SampleFactorySpec = Field(
        default_factory=SampleFactorySpec, description="Settings of the sample-factory backend."
    )

    num_envs: PositiveInt = Field(32, description="Parallel environments per trainer.")
    rollout_steps: PositiveInt = Field(
        64, description="Steps per environment per rollout: a batch is numEnvs x rolloutSteps."
    )
    learning_rate: Annotated[float, Field(gt=0.0)] = Field(3e-4, description="Adam step size.")
    anneal_learning_rate: bool = Field(
        False,
        description="Decay the learning rate linearly to 0 over each task's env-step budget.",
    )
    gamma: Probability = Field(0.99, description="Discount factor.")
    gae_lambda: Probability = Field(0.95, description="GAE lambda (bias-variance trade-off).")
    clip_coef: Annotated[float, Field(gt=0.0)] = Field(
        0.2, description="PPO's surrogate clipping range for the probability ratio."
    )
    clip_value_loss: bool = Field(
        False,
        description="Clip value updates to +-clipCoef around the rollout's values (in the "
        "units of the value targets; use with normalizeRewards).",
    )
    update_epochs: PositiveInt = Field(10, description="Passes over each batch.")
    num_minibatches: PositiveInt = Field(
        32, description="Minibatches per pass; must divide numEnvs x rolloutSteps."
    )
    ent_coef: Annotated[float, Field(ge=0.0)] = Field(
        0.0, description="Entropy bonus weight (discrete tasks that need exploration: ~0.01)."
    )
    vf_coef: Annotated[float, Field(ge=0.0)] = Field(0.5, description="Value loss weight.")
    max_grad_norm: Annotated[float, Field(gt=0.0)] = Field(
        0.5, description="Global gradient norm clipping."
    )
    normalize_advantages: bool = Field(True, description="Standardize advantages per minibatch.")
    normalize_observations: bool = Field(
        True,
        description="Standardize vector observations by running statistics (each rollout's "
        "taken in before its update, saved in checkpoints); images are scaled to [0, 1] by the "
        "CNN instead.",
    )
    normalize_rewards: bool = Field(
        True,
        description="Scale rewards by the running standard deviation of the discounted "
        "return (saved in checkpoints, cloned with the plateau weights); clipped to +-10. "
        "Sample Factory: its normalize_returns.",
    )
    network: NetworkSpec = Field(
        default_factory=NetworkSpec, description="Policy and value network architecture."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA where available, else the CPU."
    )
    threads: PositiveInt = Field(
        1, description="torch CPU threads per trainer process (1 is fastest for small MLPs)."
    )

    @model_validator(mode="after")
    def _check(self) -> TrainerSpec:
        batch = self.num_envs * self.rollout_steps
        if batch % self.num_minibatches:
            raise FieldError(
                "numMinibatches",
                f"{self.num_minibatches} does not divide the batch numEnvs*rolloutSteps ({batch})",
            )
        if self.backend == "sample-factory":
            sf = self.sample_factory
            if self.num_envs % (sf.workers * sf.envs_per_worker):
                raise FieldError(
                    "numEnvs",
                    f"{self.num_envs} envs do not split evenly over sampleFactory.workers * "
                    f"envsPerWorker ({sf.workers * sf.envs_per_worker} vector envs)",
                )
        return self


class EvaluationSpec(_Model):
    """How often and how thoroughly a role is evaluated on each of its variations."""

    every_steps: PositiveInt = Field(
        20_000, description="Env steps between evaluations; the task checkpoints at each."
    )
    episodes_per_variation: PositiveInt = Field(
        8, description="Evaluation episodes on each variation."
    )
    actions: Literal["sample", "greedy"] = Field(
        "sample",
        description="sample: actions drawn from the policy, as in training; greedy: its mode "
        "(argmax, or a Gaussian's mean). Progress records and report.json say which.",
    )


class PlateauSpec(_Model):
    """Online plateau criterion on the evaluation series (see gsl_k8s.core.plateau)."""

    metric: Literal["success_rate", "return"] = Field(
        "success_rate", description="The evaluation series: success rate, or mean return."
    )
    window: Annotated[int, Field(ge=3)] = Field(
        20, description="Evaluations the trend is fitted through (at least 3)."
    )
    min_improvement: Annotated[float, Field(ge=0.0)] = Field(
        0.1, description="Rise of the trend across the window below which the curve is flat."
    )
    confidence: Annotated[float, Field(ge=0.0)] = Field(
        2.0,
        description="Standard errors added to the rise before comparing it with "
        "minImprovement. The generalist's success-rate standard error is at least the "
        "binomial one of its evaluation.episodesPerVariation x variations episodes.",
    )
    patience: PositiveInt = Field(2, description="Flat evaluations in a row that mean plateau.")
    min_steps: NonNegativeInt = Field(0, description="No plateau before this many env steps.")


class PrometheusSourceSpec(_Model):
    """A Prometheus server that scrapes the trainers, queried over its HTTP API."""

    url: str = Field(description="Base URL, e.g. http://prometheus-operated.monitoring:9090.")
    query: str | None = Field(
        None,
        description="PromQL for the evaluation metric. Default: gsl_eval_success_ratio"
        '{namespace="<namespace>",experiment="<name>",role="generalist"} '
        "(gsl_eval_return for metric: return; gsl run has no namespace matcher).",
    )
    step_query: str | None = Field(
        None,
        description="PromQL for the env step of each evaluation, with the same labels as "
        "query. Default: gsl_eval_env_steps with the selector of the default query.",
    )
    resolution_seconds: Annotated[float, Field(gt=0)] = Field(
        5.0, description="Query resolution; keep it below the time between evaluations."
    )

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return url.rstrip("/")


class MetricsSourceSpec(_Model):
    """Where the controller reads the generalist's evaluations: the progress records in the
    store (default), or a Prometheus server."""

    prometheus: PrometheusSourceSpec | None = Field(
        None,
        description="A Prometheus server that scrapes the trainers: the controller reads the "
        "evaluations from it, over its HTTP API, instead of from the store.",
    )


class GeneralistSpec(_Model):
    """Phase I: the generalist trains on all variations until it plateaus."""

    env_steps: PositiveInt = Field(1_000_000, description="Hard cap on env steps.")
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    plateau: PlateauSpec = Field(default_factory=PlateauSpec)
    metrics_source: MetricsSourceSpec = Field(default_factory=MetricsSourceSpec)


class SelectionSpec(_Model):
    """Which variations get specialists: the `count` lowest performers, or all of them."""

    strategy: Literal["lowest", "all"] = Field(
        "lowest",
        description="lowest: the generalist's `count` weakest variations at its plateau; "
        "all: every variation.",
    )
    count: PositiveInt | None = Field(
        None,
        description="With `lowest`: how many variations; those tied with the last of them "
        "come too (a generalist at 0 on every variation hands all of them on), except ties "
        "at success 1.0, which are mastered: then exactly this many.",
    )

    @model_validator(mode="after")
    def _check(self) -> SelectionSpec:
        if self.strategy == "lowest" and self.count is None:
            raise FieldError("count", "required with strategy 'lowest'")
        if self.strategy == "all" and self.count is not None:
            raise FieldError("count", "only applies to strategy 'lowest'")
        return self


class SpecialistsSpec(_Model):
    """The specialist population: cloned from the plateau checkpoint, one subset each."""

    count: PositiveInt = Field(
        4, description="Specialists; the selected variations are split among them."
    )
    select: SelectionSpec = Field(default_factory=lambda: SelectionSpec(strategy="all"))
    partition: Literal["random", "contiguous", "balanced", "features"] = Field(
        "random",
        description="How the weak variations are split: `random` or `contiguous` ids, "
        "`balanced` total difficulty, or `features`: a size-balanced k-means on a feature "
        "vector per variation, which the generalist writes at its end (the family's where it "
        "has them: Fork-Maze arm geometry, Meta-World task one-hot and goal position, "
        "MiniGrid task one-hot or level layout; else "
        "the generalist's encoding of the variation's first observation).",
    )
    env_steps: PositiveInt = Field(200_000, description="Env-step budget of each specialist.")
    env_steps_per_variation: PositiveInt | None = Field(
        None,
        description="Instead of envSteps: a specialist's budget is this times the number of "
        "variations in its subset, so that a specialist of three variations gets three times "
        "one of a single variation. The baseline gets every env step GSL used, these too.",
    )
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    plateau: PlateauSpec | None = Field(
        None, description="Stop a specialist early once it plateaus."
    )
    policy_temperature: Annotated[float, Field(ge=1.0)] = Field(
        1.0,
        description="A specialist starts from the generalist's policy pi tempered to "
        "pi^(1/T): logits divided by T, a Gaussian's std times sqrt(T); its greedy actions "
        "are unchanged. Where the generalist has given up on a variation its policy is often "
        "near-deterministic; T > 1 lets the specialist explore it again.",
    )
    parallelism: PositiveInt = Field(2, description="Specialists trained at once.")
    min_succeeded: PositiveInt | None = Field(
        None,
        description="Go on to the finetune once the others failed if at least this many "
        "specialists succeeded. Default: all must succeed.",
    )

    @model_validator(mode="after")
    def _check(self) -> SpecialistsSpec:
        if self.min_succeeded is not None and self.min_succeeded > self.count:
            raise FieldError("minSucceeded", f"{self.min_succeeded} exceeds count ({self.count})")
        return self

    def budget(self, variations: int) -> int:
        """The env-step budget of a specialist whose subset has `variations` variations."""
        if self.env_steps_per_variation is None:
            return self.env_steps
        return self.env_steps_per_variation * variations

    def total_budget(self, selected: int) -> int:
        """The env-step budget of all `count` specialists together, given `selected` weak
        variations to split among them."""
        if self.env_steps_per_variation is None:
            return self.count * self.env_steps
        return self.env_steps_per_variation * selected


class DemosSpec(_Model):
    """Demonstrations collected after the specialists finish."""

    episodes_per_specialist: NonNegativeInt = Field(
        64,
        description="Episodes each specialist records on its subset: successful ones with "
        "successOnly, up to maxAttemptsPerEpisode attempts each.",
    )
    generalist_episodes: NonNegativeInt = Field(
        64,
        description="Episodes the generalist records on the variations it already handles "
        "(the finetune records them, once).",
    )
    success_only: bool = Field(True, description="Keep only episodes that succeed.")
    per_variation: bool = Field(
        False,
        description="Split each collection's episodes evenly over its variations, each "
        "recorded on its own (with its own fallback to sampled actions): every variation "
        "the policy solves is demonstrated. Else episodes fall on the variations at random, "
        "and where greedy actions solve one variation and loop on another, the other can "
        "get none.",
    )
    max_attempts_per_episode: PositiveInt = Field(
        4,
        description="The attempt cap: a collection tries at most this many episodes per "
        "episode asked, per kind of actions.",
    )
    specialist_actions: Literal["sample", "greedy"] = Field(
        "greedy",
        description="Specialists are experts on their subset: their greedy actions. Where "
        "greedy actions keep fewer episodes than asked (a greedy policy can loop), sampled "
        "actions record the rest, and the log says so.",
    )
    generalist_actions: Literal["sample", "greedy"] = Field(
        "sample",
        description="Sampled, as in the paper (a greedy generalist can loop); greedy falls "
        "back to sampled as for specialists.",
    )


class FinetuneSpec(_Model):
    """Phase II: the generalist resumes on all variations with PPO plus a demo term."""

    method: Literal["dapg", "bc", "gail"] = Field(
        "dapg",
        description="dapg: a log-likelihood term weighted by the max advantage; bc: the same "
        "term unweighted; gail: a discriminator (demos vs rollouts, trained each update) "
        "whose reward log D - log(1 - D), times the weight, is added to the task's scaled reward.",
    )
    demo_likelihood: Literal["log", "prob"] = Field(
        "log",
        description="The demo term of dapg and bc: log maximises mean log pi(a|s) over the "
        "demos (DAPG, Rajeswaran et al. 2018); prob maximises mean pi(a|s), as GSL's released "
        "code does (a probability for discrete actions, a density for continuous ones): its "
        "gradient fades on demo actions the policy finds unlikely.",
    )
    coef: Annotated[float, Field(ge=0.0)] = Field(0.1, description="lambda0 of the demo term.")
    decay: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        0.99, description="lambda1: the demo weight is multiplied by this every update."
    )
    demo_weighting: Literal["global", "per-variation"] = Field(
        "global",
        description="dapg and bc: global, one weight for every demo, decaying by `decay` "
        "every update; per-variation, a demo of variation v weighs coef (times the max "
        "advantage for dapg) times max(decay^k, 1 - s_v), s_v the finetune's success on v at "
        "its latest evaluation: it fades where the finetune succeeds and lasts (or returns) "
        "where it fails. Builtin trainer backend only.",
    )
    demo_batch_size: PositiveInt = Field(
        256, description="Demonstration (observation, action) pairs per demo-term minibatch."
    )
    bc_steps: NonNegativeInt = Field(
        0,
        description="Behaviour cloning before the RL resumes, as DAPG does (Rajeswaran et "
        "al. 2018): this many Adam steps on -mean log pi(a|s) over demo minibatches of "
        "demoBatchSize, at bcLearningRate, from the start checkpoint (no env steps; every "
        "method). 0: none.",
    )
    bc_learning_rate: Annotated[float, Field(gt=0.0)] = Field(
        1e-3, description="Adam step size of the behaviour cloning (bcSteps)."
    )
    env_steps: PositiveInt = Field(500_000, description="Env-step budget of each finetune.")
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    plateau: PlateauSpec | None = Field(
        None,
        description="Stop a finetune early once it plateaus (with rounds > 1, where a "
        "round ends and the next begins).",
    )


class BaselineSpec(_Model):
    """A PPO-only generalist given exactly the env steps that GSL used."""

    enabled: bool = Field(True, description="Train the baseline.")
    mode: Literal["concurrent", "after"] = Field(
        "concurrent",
        description="concurrent: the baseline starts with the generalist and trains up to "
        "the env steps GSL has used so far, waiting where it catches up, then to GSL's "
        "final total once the finetune ends (never more). after: it starts once the "
        "finetune ends, which adds its whole run to the wall time.",
    )


class StorageSpec(_Model):
    """Where checkpoints, demos and progress records live."""

    uri: str = Field(
        "file://runs",
        description="Base URI, file://DIR or s3://bucket/prefix; the experiment lives under "
        "<uri>/<name>/. file://runs is relative to the working directory.",
    )
    endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, Ceph); default: AWS, or AWS_ENDPOINT_URL."
    )
    addressing_style: Literal["auto", "path", "virtual"] | None = Field(
        None, description="S3 addressing; default: path with an endpointUrl, else auto."
    )
    region: str | None = Field(None, description="S3 region; default: the AWS chain's.")

    def s3_settings(self) -> dict[str, str | None]:
        """The S3 settings as `S3Options` keyword arguments (None: not set in the spec)."""
        return {
            "endpoint_url": self.endpoint_url,
            "addressing_style": self.addressing_style,
            "region": self.region,
        }

    @field_validator("uri")
    @classmethod
    def _scheme(cls, uri: str) -> str:
        scheme = uri.split("://", 1)[0] if "://" in uri else ""
        if scheme not in ("", "file", "s3"):
            raise ValueError(f"unsupported scheme {scheme!r}: use file:// or s3://")
        return uri


class ResourcesSpec(_Model):
    """Compute for each pod of a role: requests, and limits for the GPU."""

    cpu: str = Field("1", description="CPU request: cores (2, 1.5) or millicores (500m).")
    memory: str = Field("2Gi", description="Memory request and limit (2Gi, 512Mi).")
    gpu: NonNegativeInt = Field(0, description="nvidia.com/gpu per pod.")

    @field_validator("cpu", mode="before")
    @classmethod
    def _cpu_quantity(cls, cpu: Any) -> str:
        parse_cpu_quantity(cpu)  # a ValueError names the mistake
        return str(cpu)


class RoleJobSpec(_Model):
    """How one role's Jobs run on Kubernetes."""

    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    image: str | None = Field(None, description="Overrides kubernetes.image for this role.")
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="The pods' nodeSelector."
    )
    tolerations: list[dict[str, Any]] = Field(
        default_factory=list, description="The pods' tolerations."
    )
    affinity: dict[str, Any] | None = Field(None, description="The pods' affinity.")
    priority_class_name: str | None = Field(
        None,
        description="The pods' PriorityClass (under Kueue, also the workload's priority "
        "unless workloadPriorityClassName is set).",
    )
    queue_name: LabelValue | None = Field(
        None,
        description="Overrides kubernetes.queueName for this role's Jobs.",
    )
    workload_priority_class_name: LabelValue | None = Field(
        None,
        description="A Kueue WorkloadPriorityClass for this role's Jobs (label "
        "kueue.x-k8s.io/priority-class): their priority in the queue, apart from the pods' "
        "priorityClassName. Needs a queue.",
    )
    backoff_limit: NonNegativeInt = Field(2, description="Pod retries before the Job fails.")
    active_deadline_seconds: PositiveInt | None = Field(
        None, description="The Job's activeDeadlineSeconds: how long it may run."
    )
    ttl_seconds_after_finished: NonNegativeInt | None = Field(
        None, description="Delete finished Jobs after this long (needs Kubernetes >= 1.21)."
    )
    termination_grace_period_seconds: NonNegativeInt = Field(
        60,
        description="Seconds between SIGTERM and SIGKILL when a pod is stopped: a trainer "
        "saves and uploads a checkpoint in them.",
    )


class PodSecurityContextSpec(_Model):
    """The user and group the trainer pods run as. The rest of their security context is
    fixed: non-root, RuntimeDefault seccomp, no capabilities, a read-only root filesystem.

    Both are unset by default, so the pods run as the image's own numeric user (65532, see
    IMAGE_UID) or as the one a platform assigns (OpenShift's restricted SCC); no default
    comes back when a client drops a null (a client-side `kubectl apply` does)."""

    run_as_user: PositiveInt | None = Field(
        None,
        description="Unset: the image's user (65532), or the platform's where it assigns one "
        "(OpenShift's restricted SCC, from the namespace's range); a number pins it.",
    )
    run_as_group: PositiveInt | None = Field(
        None, description="Unset: the image's group (65532), or the platform's; a number pins it."
    )


class KubernetesSpec(_Model):
    """Where and how the operator runs the experiment's Jobs (ignored by `gsl run`)."""

    image: str = Field(
        f"{TRAINER_IMAGE}:{__version__}",
        description="The trainer image (default: this gsl-k8s version's CPU image).",
    )
    image_pull_secrets: list[Annotated[str, Field(pattern=DNS_NAME)]] = Field(
        default_factory=list,
        description="Secrets in the experiment's namespace that pull the trainer image from "
        "a private registry (type kubernetes.io/dockerconfigjson), on every Job's pods.",
    )
    pod_security_context: PodSecurityContextSpec = Field(
        default_factory=PodSecurityContextSpec,
        description="The user and group the trainer pods run as.",
    )
    service_account_name: str = Field(
        "gsl-trainer", description="The trainer pods' ServiceAccount (needs no API rights)."
    )
    credentials_secret: str | None = Field(
        None,
        description="A Secret whose keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...) "
        "become the trainers' environment.",
    )
    metrics_port: int = Field(
        TRAINER_METRICS_PORT,
        ge=0,
        le=65535,
        description="Port of the trainers' Prometheus /metrics; 0: trainers serve none.",
    )
    queue_name: LabelValue | None = Field(
        None,
        description="A Kueue LocalQueue in the experiment's namespace: every Job gets the "
        "label kueue.x-k8s.io/queue-name and, on Kubernetes 1.22+, is created suspended for "
        "Kueue to admit.",
    )
    generalist: RoleJobSpec = Field(default_factory=RoleJobSpec)
    specialist: RoleJobSpec = Field(default_factory=RoleJobSpec)
    finetune: RoleJobSpec = Field(default_factory=RoleJobSpec)
    baseline: RoleJobSpec = Field(default_factory=RoleJobSpec)
    report: RoleJobSpec = Field(
        default_factory=lambda: RoleJobSpec(resources=ResourcesSpec(cpu="500m", memory="1Gi")),
        description="The last, short Job: writes report.json and report.png "
        "(default resources: cpu 500m, memory 1Gi).",
    )

    @model_validator(mode="after")
    def _check(self) -> KubernetesSpec:
        for role in ROLES:
            job = getattr(self, role)
            if job.workload_priority_class_name and not (job.queue_name or self.queue_name):
                raise FieldError(
                    f"{role}.workloadPriorityClassName",
                    "needs a Kueue queue: set queueName (in this role or in spec.kubernetes)",
                )
        return self


class ExperimentSpec(_Model):
    """`spec` of a GSLExperiment."""

    seed: NonNegativeInt = Field(
        0, description="Seeds every task (each role and index its own) and the partition."
    )
    rounds: PositiveInt = Field(
        1,
        description="GSL rounds. After each round's finetune, the next round's specialists "
        "clone the finetuned weights and train on the variations still weak (selected and "
        "partitioned as in round 1), and a finetune resumes from the same weights with every "
        "demonstration so far. Rounds end early once the finetune succeeds on every variation.",
    )
    env: EnvSpec = Field(default_factory=EnvSpec)
    trainer: TrainerSpec = Field(default_factory=TrainerSpec)
    generalist: GeneralistSpec = Field(default_factory=GeneralistSpec)
    specialists: SpecialistsSpec = Field(default_factory=SpecialistsSpec)
    demos: DemosSpec = Field(default_factory=DemosSpec)
    finetune: FinetuneSpec = Field(default_factory=FinetuneSpec)
    baseline: BaselineSpec = Field(default_factory=BaselineSpec)
    storage: StorageSpec = Field(default_factory=StorageSpec)
    kubernetes: KubernetesSpec = Field(default_factory=KubernetesSpec)

    @model_validator(mode="after")
    def _check(self) -> ExperimentSpec:
        num_variations = len(self.env.variation_ids)
        selected = self.specialists.select.count or num_variations
        if selected > num_variations:
            raise FieldError(
                "specialists.select.count",
                f"{selected} exceeds the number of variations ({num_variations})",
            )
        for field, default in (("demo_likelihood", "log"), ("demo_weighting", "global")):
            if self.finetune.method == "gail" and getattr(self.finetune, field) != default:
                raise FieldError(
                    f"finetune.{to_camel(field)}",
                    "applies to dapg and bc only (gail has no such term)",
                )
        if self.finetune.demo_weighting != "global" and self.trainer.backend != "builtin":
            raise FieldError(
                "finetune.demoWeighting", "per-variation needs the builtin trainer backend"
            )
        if self.finetune.method == "gail" and self.trainer.backend == "sample-factory":
            raise FieldError(
                "finetune.method",
                "gail needs the builtin trainer backend (sample-factory supports dapg and bc)",
            )
        if self.specialists.count > selected:
            raise FieldError(
                "specialists.count",
                f"{self.specialists.count} specialists for {selected} variations: "
                "each specialist needs at least one variation",
            )
        return self


class Metadata(_Model):
    """The Kubernetes object metadata that matters here (extra keys such as labels are kept)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$",
        max_length=40,
        description="The experiment's name: its Jobs are <name>-<task>, its run lives under "
        "<storage uri>/<name>/ (on Kubernetes, <storage uri>/<namespace>/<name>/).",
    )


class GSLExperiment(_Model):
    """A GSL experiment, as a Kubernetes object."""

    api_version: Literal["gsl.dev/v1alpha1"] = Field(
        API_VERSION, alias="apiVersion", description="The API group and version."
    )
    kind: Literal["GSLExperiment"] = Field(KIND, description="The kind of object.")
    metadata: Metadata = Field(description="Object metadata; extra keys such as labels are kept.")
    spec: ExperimentSpec = Field(default_factory=ExperimentSpec)

    @property
    def name(self) -> str:
        """The experiment's name (metadata.name)."""
        return self.metadata.name

    def to_json(self) -> str:
        """The spec as camelCase JSON, loadable by `parse_spec`."""
        return json.dumps(self.model_dump(mode="json", by_alias=True), indent=2)


def _field_path(loc: tuple[Any, ...]) -> str:
    """Turn a pydantic error location into the camelCase path the user wrote."""
    # Union members appear in locations as tags such as "constrained-int" or "list[...]".
    parts = [str(p) for p in loc if not re.search(r"[-\[]", str(p))]
    return ".".join(to_camel(p) for p in parts)


def _described_field(loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, str | None]:
    """The model that holds the field at a pydantic error location, and the field's
    description (None where the location leaves the models)."""
    model: type[BaseModel] | None = GSLExperiment
    description = None
    for part in loc:
        if model is None:
            return None, None
        fields = {info.alias or name: info for name, info in model.model_fields.items()}
        info = fields.get(str(part))
        if info is None:
            return (model, None) if part == loc[-1] else (None, None)
        description = info.description
        nested = [t for t in (info.annotation, *get_args(info.annotation)) if _is_model(t)]
        model = nested[0] if nested and part != loc[-1] else None
    return model, description


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def parse_spec(obj: Any) -> GSLExperiment:
    """Validate a decoded spec object; raises SpecError naming the offending field and saying
    what it means (its description), or, for an unknown field, the nearest known name."""
    if not isinstance(obj, dict):
        raise SpecError("a spec must be a YAML mapping with apiVersion, kind, metadata and spec")
    try:
        return GSLExperiment.model_validate(obj)
    except ValidationError as err:
        first = err.errors()[0]
        where = _field_path(first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        cause = first.get("ctx", {}).get("error")
        if isinstance(cause, FieldError):
            where = f"{where}.{cause.field}" if where else cause.field
        elif first["type"] == "extra_forbidden":
            message = "unknown field"
            holder, _ = _described_field(first["loc"])
            known = [info.alias or name for name, info in (holder or _Model).model_fields.items()]
            close = difflib.get_close_matches(str(first["loc"][-1]), known, n=1)
            if close:
                message += f" (did you mean {close[0]}?)"
        else:
            _, description = _described_field(first["loc"])
            if description:
                message += f" ({first['loc'][-1]}: {description.rstrip('.')})"
        extra = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise SpecError(f"{where}: {message}{extra}") from None


def unknown_fields(obj: dict[str, Any]) -> list[str]:
    """The keys of an experiment object that the schema does not know, as camelCase paths
    (`status`, which only the operator writes, is not checked)."""
    try:
        GSLExperiment.model_validate({k: v for k, v in obj.items() if k != "status"})
    except ValidationError as err:
        return [_field_path(e["loc"]) for e in err.errors() if e["type"] == "extra_forbidden"]
    return []


def load_spec(path: str | Path) -> GSLExperiment:
    """Read and validate a spec file; raises SpecError for a missing, unreadable or invalid file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except OSError as err:
        raise SpecError(f"{path}: cannot read ({err.strerror})") from None
    try:
        obj = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML ({err})") from None
    try:
        return parse_spec(obj)
    except SpecError as err:
        raise SpecError(f"{path}: {err}") from None
