"""Scene settings, job state, the motion operators (generate, recognise, edit, cancel) and registration.

The backend operators are in backend_ops.py, the panel drawing in drawing.py and panels.py, the
preferences in preferences.py."""

from __future__ import annotations

import json

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty,
                       StringProperty)

from . import backend, body, connection, jobs, rig, setup_ui
from .client import DEFAULT_URL, BackendError, Client, is_local
from .protocol_loader import protocol

ADDON_ID = __package__  # "motionclip_blender" as a legacy add-on, "bl_ext.<repo>.motionclip_blender" as an extension


# ---------------------------------------------------------------- preferences

def prefs(context=None):
    addon = (context or bpy.context).preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None else None


def make_client(context) -> Client:
    p = prefs(context)
    url = p.backend_url if p else DEFAULT_URL
    if not is_local(url) and not getattr(bpy.app, "online_access", True):
        raise BackendError(f"{url} is not on this machine and Blender's online access is off; allow it in "
                           "Preferences > System > Network, or use a local backend")
    return Client(url, p.token if p else "", p.timeout if p else 120.0)


# ---------------------------------------------------------------- scene settings and job state

_MAX_STRENGTH = getattr(protocol, "MAX_STRENGTH", 5.0)


class MOTIONCLIP_PG_settings(bpy.types.PropertyGroup):
    prompt: StringProperty(name="Prompt", default="a person walks forward",
                           description="What the character does")
    length_mode: EnumProperty(name="Length", default="SCENE", items=[
        ("SCENE", "Scene", "As long as the scene's frame range"),
        ("SECONDS", "Seconds", "A number of seconds"),
        ("FRAMES", "Frames", "A number of frames")])
    seconds: FloatProperty(name="Seconds", default=4.0, min=0.1, max=protocol.MAX_SECONDS)
    frames: IntProperty(name="Frames", default=120, min=1, max=protocol.MAX_FRAMES)
    seed: IntProperty(name="Seed", default=0, min=0, description="Same prompt and seed, same motion")
    start_frame: IntProperty(name="Start Frame", default=1, description="Frame of the motion's first key")
    target: EnumProperty(name="Target", default="AUTO", items=[
        ("AUTO", "Selected or New", "The active armature when it has SMPL bones (its action is replaced), "
                                    "otherwise a new SMPL armature"),
        ("NEW", "New Armature", "Always a new SMPL armature")])
    body: BoolProperty(name="Body Mesh", default=True, description="Skin a stand-in body mesh to a new armature")
    prompt_b: StringProperty(name="Blend With", default="",
                             description="A second prompt: Generate then blends the two motions")
    blend: FloatProperty(name="Blend", default=0.5, min=0.0, max=1.0, subtype="FACTOR",
                         description="0 is the first prompt, 1 the second")
    edit_from: StringProperty(name="From", default="walk")
    edit_to: StringProperty(name="To", default="walk happily")
    edit_strength: FloatProperty(name="Strength", default=1.0, min=-_MAX_STRENGTH, max=_MAX_STRENGTH)
    labels: StringProperty(name="Labels", default="walk, run, jump, wave, kick, punch, bow, sit down, dance",
                           description="Comma-separated candidate actions for Recognise")


class MOTIONCLIP_PG_label(bpy.types.PropertyGroup):
    label: StringProperty()
    score: FloatProperty()


class MOTIONCLIP_PG_job(bpy.types.PropertyGroup):
    running: BoolProperty(default=False)
    status: StringProperty(default="")
    detail: StringProperty(default="", description="What the running job is doing now")
    fraction: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR", description="How far it is")
    percent: FloatProperty(name="Done", default=0.0, min=0.0, max=100.0, subtype="PERCENTAGE", precision=0,
                           description="How far it is (the progress bar of Blender before 4.0)")
    error: StringProperty(default="")
    server: StringProperty(default="", description="What the backend said about itself")
    labels: CollectionProperty(type=MOTIONCLIP_PG_label)


def scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base


def length_kwargs(settings, scene) -> dict:
    fps = scene_fps(scene)
    if settings.length_mode == "SECONDS":
        return {"seconds": settings.seconds, "fps": fps}
    if settings.length_mode == "FRAMES":
        return {"frames": settings.frames, "fps": fps}
    return {"frames": max(1, min(protocol.MAX_FRAMES, scene.frame_end - scene.frame_start + 1)), "fps": fps}


def target_name(context, settings) -> str | None:
    ob = context.active_object
    if settings.target == "AUTO" and rig.is_smpl_armature(ob):
        return ob.name
    return None


def undo_base() -> None:
    """Headless Blender starts with an empty undo stack: give it a step for the state before a
    change, so that the change can be undone there too (a UI session always has one)."""
    if bpy.ops.ed.undo_push.poll() and not bpy.ops.ed.undo.poll():
        bpy.ops.ed.undo_push(message="before motionclip")


def push_undo(message: str) -> None:
    """One undo step for a change made outside an operator's own undo handling (the result of a
    job is applied from a timer, after its operator has finished)."""
    if bpy.ops.ed.undo_push.poll():
        bpy.ops.ed.undo_push(message=message)


def apply_generated(context, motion, name: str, *, target: str | None, start_frame: int, with_body: bool) -> str:
    """Key a motion on the armature named ``target`` (a new one when there is none, or when it is
    gone: deleted or undone while the backend worked); returns a status line. Main thread only.
    Only plain values cross from the operator: Python references to Blender data do not survive
    an undo in between."""
    scene = context.scene
    undo_base()
    arm = bpy.data.objects.get(target) if target else None
    if arm is not None and not rig.is_smpl_armature(arm):
        arm = None
    made = arm is None
    if made:
        arm = rig.build_armature("SMPL", motion.rest_offsets)
        arm.location = placement(context, arm)
        if with_body:
            body.add_body(arm)
    action = rig.apply_motion(arm, motion, rig.action_name_for(name), start_frame,
                              meta={"motionclip_prompt": name, "motionclip_fps": float(motion.fps)})
    first, last = start_frame, start_frame + motion.num_frames - 1
    scene.frame_start, scene.frame_end = first, last
    scene.frame_set(scene.frame_current if first <= scene.frame_current <= last else first)
    push_undo(f"motionclip: {name}")
    where = f", at ({arm.location.x:.2f}, {arm.location.y:.2f}, {arm.location.z:.2f})" if made else ""
    return (f"{arm.name}{' (new)' if made else ''}: \"{action.name}\", {motion.num_frames} frames at "
            f"{motion.fps:g} fps, from frame {first}{where}")


PLACE_GAP = 0.5  # metres between a new armature and the object it is moved beside


def placement(context, arm):
    """Where a new armature goes: at the 3D cursor, moved along +X beside any visible mesh whose
    bounding box holds that spot (the factory scene's cube sits on the cursor)."""
    from mathutils import Vector

    spot = context.scene.cursor.location.copy()
    boxes = []
    for ob in context.view_layer.objects:
        if ob.type != "MESH" or ob.parent == arm or not ob.visible_get():
            continue
        corners = [ob.matrix_world @ Vector(c) for c in ob.bound_box]
        boxes.append((Vector([min(c[i] for c in corners) for i in range(3)]),
                      Vector([max(c[i] for c in corners) for i in range(3)])))
    for _ in range(len(boxes) + 1):
        hit = next((hi for lo, hi in boxes if lo.x <= spot.x <= hi.x and lo.y <= spot.y <= hi.y
                    and lo.z - 2.0 <= spot.z <= hi.z), None)
        if hit is None:
            break
        spot.x = hit.x + PLACE_GAP
    return spot


# ---------------------------------------------------------------- operators

class _JobOperator:
    @classmethod
    def poll(cls, context):
        return not jobs.busy()

    def fail(self, context, error) -> set[str]:
        """Show the whole error in the panel (in place of the status lines it makes stale) and
        report it; nothing else changes."""
        text = jobs.message(error)
        jobs.show_error(jobs.state(context), text, f"{self.bl_label}: failed")
        jobs.redraw()
        self.report({"ERROR"}, text)
        return {"CANCELLED"}

    def launch(self, context, label, work, apply) -> set[str]:
        try:
            ok = jobs.start(label, work, apply)
        except (BackendError, RuntimeError, ValueError) as exc:
            return self.fail(context, exc)
        if ok is False:  # background mode: the job ran and failed; its error is in the panel already
            self.report({"ERROR"}, jobs.state(context).error)
            return {"CANCELLED"}
        return {"FINISHED"}


def explained(call, hints: dict[str, str]):
    """``call`` with the server's refusals of a field completed by what to change in the panel
    (``hints``: the server's field name -> a hint; plain strings, for the worker thread)."""
    def run():
        try:
            return call()
        except BackendError as exc:
            field = (exc.field or "").split(".")[0].split("[")[0]
            hint = hints.get(field) if exc.status in (400, 413, 422) else None
            if not hint:
                raise
            raise BackendError(f"{exc}; {hint}", exc.status, exc.field) from None
    return run


def length_hint(settings, scene, button: str) -> str:
    if settings.length_mode == "SECONDS":
        return f"lower Seconds in the MotionCLIP panel and press {button} again"
    if settings.length_mode == "FRAMES":
        return f"lower Frames in the MotionCLIP panel and press {button} again"
    n = scene.frame_end - scene.frame_start + 1
    return (f"Length is the scene's frame range ({n} frames): shorten it, or set Length to Seconds or Frames "
            f"in the MotionCLIP panel with less, and press {button} again")


MOTION_HINT = "the selected action is longer than this model handles: select a shorter one"


class MOTIONCLIP_OT_generate(_JobOperator, bpy.types.Operator):
    """Generate a motion from the prompt (blended with the second prompt when one is given) and key it
    on an SMPL armature"""
    bl_idname = "motionclip.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}  # the undo step is pushed when the result is applied

    def execute(self, context):
        settings = context.scene.motionclip
        prompt, other = settings.prompt.strip(), settings.prompt_b.strip()
        if not prompt:
            return self.fail(context, "the Prompt is empty: type what the character does in the Prompt field at "
                                      "the top of the MotionCLIP panel, then press Generate")
        try:
            client = make_client(context)
        except BackendError as exc:
            return self.fail(context, exc)
        length = length_kwargs(settings, context.scene)
        seed = settings.seed
        target, start, with_body = target_name(context, settings), settings.start_frame, settings.body
        chars = getattr(protocol, "MAX_PROMPT_CHARS", 300)
        hints = {"prompt": f"shorten the Prompt (at most {chars} characters) and press Generate again",
                 "a": f"shorten the Prompt (at most {chars} characters) and press Generate again",
                 "b": f"shorten Blend With (at most {chars} characters) and press Generate again",
                 "frames": length_hint(settings, context.scene, "Generate"),
                 "seconds": length_hint(settings, context.scene, "Generate"),
                 "fps": "set the scene's Frame Rate (Output Properties > Format) to one the backend accepts",
                 "seed": "lower Seed in the MotionCLIP panel"}
        if other:
            alpha = settings.blend
            name = f"{prompt} | {other} {alpha:.2f}"
            ask = explained(lambda: client.interpolate(prompt, other, [alpha], seed=seed, **length)[0], hints)
        else:
            name = prompt
            ask = explained(lambda: client.generate(prompt, seed=seed, **length), hints)

        def work():  # worker thread: who the server is (for the status line), then the motion
            return client.health(), ask()

        def apply(result):
            health, motion = result
            jobs.state(bpy.context).server = server_line(client, health)
            remember_prompt(prompt)
            return apply_generated(bpy.context, motion, name, target=target, start_frame=start, with_body=with_body)

        return self.launch(context, "Generating", work, apply)


def server_line(client, health) -> str:
    model = health.model.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return f"Connected: {client.url}, model {model} ({health.text_encoder}, {health.device})"


def _selected_motion(context, button: str):
    ob = context.active_object
    if ob is None:
        raise rig.RigError(f"nothing is selected: {button} works on an SMPL armature with an action; select one "
                           f"in the 3D View (Generate makes one) and press {button} again")
    if not rig.is_smpl_armature(ob):
        raise rig.RigError(f"the active object {ob.name!r} is not an SMPL armature: select one with an action "
                           f"(Generate makes one) and press {button} again")
    return ob, rig.read_motion(ob, scene_fps(context.scene))


class _MotionOperator(_JobOperator):
    """A button that sends the selected SMPL armature's motion to the backend."""
    bl_options = {"REGISTER"}

    def motion_request(self, context, empty: str = ""):
        """The selected armature, its motion and a client for the backend; first a ValueError with
        `empty` when a field the button needs is empty (`empty` says which and what to type)."""
        if empty:
            raise ValueError(empty)
        ob, motion = _selected_motion(context, self.bl_label)
        return ob, motion, make_client(context)


class MOTIONCLIP_OT_recognize(_MotionOperator, bpy.types.Operator):
    """Rank the candidate labels for the selected SMPL armature's action"""
    bl_idname = "motionclip.recognize"
    bl_label = "Recognise"

    def execute(self, context):
        labels = [l.strip() for l in context.scene.motionclip.labels.split(",") if l.strip()]
        jobs.state(context).labels.clear()  # the last ranking is not this one's
        try:
            _, motion, client = self.motion_request(context, "" if labels else (
                "the Labels field is empty: type the candidate actions, separated by commas (e.g. walk, run, jump), "
                "then press Recognise"))
        except (rig.RigError, BackendError, ValueError) as exc:
            return self.fail(context, exc)
        limits = (f"at most {getattr(protocol, 'MAX_LABELS', 200)} labels of "
                  f"{getattr(protocol, 'MAX_LABEL_CHARS', 100)} characters")
        hints = {"labels": f"fix the Labels field ({limits}) and press Recognise again", "motion": MOTION_HINT}

        def apply(ranked):
            st = jobs.state(bpy.context)
            st.labels.clear()
            for label, score in ranked:
                item = st.labels.add()
                item.label, item.score = label, score
            return f"Recognised: {ranked[0][0]} ({ranked[0][1]:.2f})" if ranked else "no labels"

        return self.launch(context, "Recognising",
                           explained(lambda: client.recognize(motion, labels, top=len(labels)), hints), apply)


class MOTIONCLIP_OT_edit(_MotionOperator, bpy.types.Operator):
    """Move the selected SMPL armature's motion along a text direction (From -> To) into a new action"""
    bl_idname = "motionclip.edit"
    bl_label = "Edit Motion"

    def execute(self, context):
        settings = context.scene.motionclip
        src, dst, strength = settings.edit_from.strip(), settings.edit_to.strip(), settings.edit_strength
        try:
            ob, motion, client = self.motion_request(context, "" if src and dst else (
                f"{'From' if not src else 'To'} is empty: type what the motion is (From) and what it should "
                "become (To), e.g. walk -> walk happily, then press Edit Motion"))
        except (rig.RigError, BackendError, ValueError) as exc:
            return self.fail(context, exc)
        name = rig.action_name_for(ob.animation_data.action.name, f" ({src} -> {dst})")
        target, start = ob.name, int(round(ob.animation_data.action.frame_range[0]))
        hints = {"source": "fix From and press Edit Motion again", "target": "fix To and press Edit Motion again",
                 "strength": "change Strength and press Edit Motion again", "motion": MOTION_HINT}
        return self.launch(context, "Editing", explained(lambda: client.edit(motion, src, dst, strength), hints),
                           lambda m: apply_generated(bpy.context, m, name, target=target, start_frame=start,
                                                     with_body=False))


class MOTIONCLIP_OT_cancel(bpy.types.Operator):
    """Stop waiting for the backend; its answer is dropped and nothing changes"""
    bl_idname = "motionclip.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return jobs.busy()

    def execute(self, context):
        jobs.cancel()
        return {"FINISHED"}


MAX_RECENT = 8


def recent_prompts(context=None) -> list[str]:
    p = prefs(context)
    try:
        items = json.loads(p.recent_prompts) if p else []
    except ValueError:
        items = []
    return [x for x in items if isinstance(x, str)][:MAX_RECENT]


def remember_prompt(prompt: str) -> None:
    """Most recent first, each once; kept with the preferences (they outlive the .blend)."""
    p = prefs()
    if p is None:
        return
    items = [prompt] + [x for x in recent_prompts() if x != prompt]
    p.recent_prompts = json.dumps(items[:MAX_RECENT])


classes = (
    MOTIONCLIP_PG_settings,
    MOTIONCLIP_PG_label,
    MOTIONCLIP_PG_job,
    MOTIONCLIP_OT_generate,
    MOTIONCLIP_OT_recognize,
    MOTIONCLIP_OT_edit,
    MOTIONCLIP_OT_cancel,
) + setup_ui.classes


def _all_classes():
    from . import backend_ops, panels, preferences

    return (preferences.MOTIONCLIP_AP_preferences,) + classes + backend_ops.classes + panels.classes


def register():
    for cls in _all_classes():
        bpy.utils.register_class(cls)
    bpy.types.Scene.motionclip = PointerProperty(type=MOTIONCLIP_PG_settings)
    bpy.types.WindowManager.motionclip_job = PointerProperty(type=MOTIONCLIP_PG_job)
    from .preferences import migrate_prefs

    p = prefs()
    note = migrate_prefs(p) if p is not None else None
    if note:
        print(f"motionclip: {note}")
    backend.LOG_FILE = setup_ui.user_dir() / "backend.log"  # one per Blender user, fresh at each start
    connection.start(lambda: make_client(bpy.context))
    if not bpy.app.background:  # batch renders (blender -b) never start a server behind the user's back
        from .backend_ops import on_start

        bpy.app.timers.register(on_start, first_interval=1.0)


def unregister():
    from .backend_ops import on_start

    if bpy.app.timers.is_registered(on_start):
        bpy.app.timers.unregister(on_start)
    connection.stop()
    jobs.shutdown()
    backend.stop()
    del bpy.types.WindowManager.motionclip_job
    del bpy.types.Scene.motionclip
    for cls in reversed(_all_classes()):
        bpy.utils.unregister_class(cls)
