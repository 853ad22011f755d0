"""Physics-only ManiSkill2 0.5.3 (SAPIEN 2.2.2) for machines without a Vulkan rendering device.

ManiSkill2 always renders, even with ``obs_mode="state"``: ``BaseEnv.__init__`` creates a
``sapien.SapienRenderer``, and every reconfigure (an env's first reset, and every reset of
tasks such as PegInsertionSide-v0) builds a render scene with cameras and lights. Without a
usable Vulkan device this fails in one of two ways (both measured on CPU-only Debian 12):

- Vulkan loader plus a CPU driver that SAPIEN refuses, such as Mesa's lavapipe (which
  ``apt-get install libvulkan1`` pulls in as a recommendation): ``SapienRenderer()`` raises
  ``RuntimeError: Cannot find a suitable rendering device``, so no env can be created;
- Vulkan loader without any driver: the renderer comes up degraded ("Vulkan is incompatible
  with your driver"), and then creating a camera (``mani_skill2/sensors/camera.py``, from
  ``BaseEnv._setup_cameras``) segfaults; so do adding a light and freeing a scene.

`disable_rendering_if_headless` checks once per process, in a child process so that a crash
stays there, whether SAPIEN can take a camera picture. Only if it cannot, it logs one line
and replaces these mani_skill2 0.5.3 internals:

1. the Vulkan drivers are hidden from this process and its children (``VK_ICD_FILENAMES``
   and ``VK_DRIVER_FILES`` name a file that does not exist), so that the renderer
   ``BaseEnv.__init__`` insists on comes up degraded instead of raising; it is still used to
   create render materials, which needs no device. One degraded renderer is created here,
   with its start-up errors silenced, and kept so that later ones share its context quietly
   (``MS2_RENDERER_LOG_LEVEL`` defaults to ``error`` for the same reason);
2. ``BaseEnv._setup_scene`` detaches the renderer from the SAPIEN engine before creating the
   scene, so scenes are physics-only: they have no render scene, and freeing them (in
   ``BaseEnv._clear``, on reconfigure and close) is safe;
3. ``BaseEnv._setup_cameras`` creates no cameras and ``BaseEnv._setup_lighting`` no lights
   (both need a render scene); ``BaseEnv.render`` raises a clear error.

Physics (PhysX, on the CPU) is untouched and state observations never read a camera: the
same seeds and actions give bitwise the same trajectories as the workaround of the research
notes, which keeps the degraded render scenes and never frees them (to dodge the free-time
segfault). That workaround leaks a scene per reconfigure and slows stepping down as they
pile up (PickCube-v0 after 300 reconfigures: 600 MB and 171 steps/s, against 384 MB and
471 steps/s here), so it is not used. Image observations need a real device.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import subprocess
import sys
from collections import OrderedDict

LOGGER = logging.getLogger("gsl_k8s.envs.maniskill2")

NO_DRIVER = "/nonexistent/gsl-k8s-no-vulkan-device.json"
"""What the Vulkan driver variables name once rendering is disabled (children inherit it)."""

_PROBE = """
import warnings
warnings.filterwarnings("ignore")
import sapien.core as sapien
engine = sapien.Engine()
engine.set_renderer(sapien.SapienRenderer(offscreen_only=True))
scene = engine.create_scene()
camera = scene.add_camera("probe", 4, 4, 1.0, 0.01, 10.0)
scene.update_render()
camera.take_picture()
print("rendered")
"""

_kept: list = []  # the degraded renderer whose context later renderers share


def rendering_device_available() -> bool:
    """Whether SAPIEN can render here (checked in a child process: without a device, SAPIEN
    raises or segfaults)."""
    if os.environ.get("VK_ICD_FILENAMES") == NO_DRIVER:
        return False  # this process or a parent already found none
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        return False
    return probe.returncode == 0 and "rendered" in probe.stdout


@contextlib.contextmanager
def _silenced_stderr():
    """Silence file descriptor 2, where SAPIEN's C++ logger writes."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@functools.cache
def disable_rendering_if_headless() -> bool:
    """Make ManiSkill2 physics-only if no rendering device exists (see the module docstring);
    True if it did. Idempotent; import mani_skill2 before calling it."""
    if rendering_device_available():
        return False
    import sapien.core as sapien
    from mani_skill2.envs.sapien_env import BaseEnv

    os.environ["VK_ICD_FILENAMES"] = os.environ["VK_DRIVER_FILES"] = NO_DRIVER
    os.environ.pop("VK_ADD_DRIVER_FILES", None)
    os.environ.setdefault("MS2_RENDERER_LOG_LEVEL", "error")
    with _silenced_stderr():
        renderer = sapien.SapienRenderer(offscreen_only=True)
        renderer.set_log_level("error")
    _kept.append(renderer)

    setup_scene = BaseEnv._setup_scene

    def _setup_scene(self, scene_config=None):
        self._engine.set_renderer(None)  # physics-only scene
        setup_scene(self, scene_config)

    def _setup_cameras(self):
        self._cameras = OrderedDict()
        self._render_cameras = OrderedDict()

    def _setup_lighting(self):
        pass

    def render(self):
        raise RuntimeError("ManiSkill2 runs physics-only here: no Vulkan rendering device")

    BaseEnv._setup_scene = _setup_scene
    BaseEnv._setup_cameras = _setup_cameras
    BaseEnv._setup_lighting = _setup_lighting
    BaseEnv.render = render
    LOGGER.warning(
        "ManiSkill2: no Vulkan rendering device found, running physics-only "
        "(cameras, lights and rendering disabled; state observations are unaffected)"
    )
    return True
