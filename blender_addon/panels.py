"""The 3D View sidebar tab: the main panel (the live connection line; the set-up box when there is
no backend; otherwise the prompt with its recent and example prompts, the settings, one
Generate or, while a job runs, its progress and one Cancel), Recognise and Edit, and the
built-in model's limits."""

from __future__ import annotations

import bpy
from bpy.props import StringProperty

from . import backend, connection, jobs, rig, setup_ui
from .drawing import _draw_connection, _draw_status, _lines, text_columns, wrap
from .ui import MOTIONCLIP_OT_edit, MOTIONCLIP_OT_generate, MOTIONCLIP_OT_recognize, recent_prompts, scene_fps

# Prompts the built-in model does well with (its gallery: a walk, a run, a right-hand wave...).
EXAMPLES = ("a person walks forward", "a person runs forward", "a person waves with the right hand",
            "a person walks forward and turns to the left", "a person waves both hands", "a person jumps")

MODEL_NOTES = (
    "Plain wordings work best (\"a person walks\"): wordings unlike its training texts often miss the action.",
    "Best at 4 seconds: it was trained on 2-4 s clips; longer motions slow down after 4 s.",
    "Walks step with short strides (the feet partly glide); sideways and backwards walks are weak.",
    "Left and right: the named hand is raised for most phrasings, but \"waves goodbye\" raises the left.",
    "Bows are a slight nod; \"kicks\" is a fighting stance; raised hands reach face height.",
    "Small (2.9 M parameters, under 2 hours of mocap): train your own for more (motionclip train).",
    "Non-commercial use only (trained on CC BY-NC 4.0 data); see MODEL_CARD.md.",
)


class MOTIONCLIP_OT_use_prompt(bpy.types.Operator):
    """Put this prompt in the Prompt field"""
    bl_idname = "motionclip.use_prompt"
    bl_label = "Use Prompt"
    bl_options = {"REGISTER", "UNDO"}

    prompt: StringProperty(name="Prompt", default="")

    def execute(self, context):
        if not self.prompt.strip():
            self.report({"ERROR"}, "no prompt given: pick one from the prompt menu next to the Prompt field")
            return {"CANCELLED"}
        context.scene.motionclip.prompt = self.prompt
        return {"FINISHED"}


class MOTIONCLIP_MT_prompts(bpy.types.Menu):
    bl_idname = "MOTIONCLIP_MT_prompts"
    bl_label = "Prompts"

    def draw(self, context):
        layout = self.layout
        recent = recent_prompts(context)
        layout.label(text="Recent", icon="TIME")
        if not recent:
            layout.label(text="(none yet: each prompt you generate is kept here)")
        for text in recent:
            layout.operator(MOTIONCLIP_OT_use_prompt.bl_idname, text=text).prompt = text
        layout.separator()
        layout.label(text="Examples", icon="LIGHT")
        for text in EXAMPLES:
            layout.operator(MOTIONCLIP_OT_use_prompt.bl_idname, text=text).prompt = text


def draw_prompt(layout, s, width: int) -> None:
    row = layout.row(align=True)
    row.scale_y = 1.3
    row.prop(s, "prompt", text="")
    row.menu(MOTIONCLIP_MT_prompts.bl_idname, text="", icon="COLLAPSEMENU")
    if len(s.prompt) > width - 6:  # longer than the field shows: the whole prompt under it
        col = layout.column(align=True)
        col.scale_y = 0.8
        for line in wrap(s.prompt, width):
            col.label(text=line)


class MOTIONCLIP_PT_main(bpy.types.Panel):
    bl_idname = "MOTIONCLIP_PT_main"
    bl_label = "Text to Motion"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "MotionCLIP"

    def draw(self, context):
        layout = self.layout
        width = text_columns(context)
        st = jobs.state(context)
        if setup_ui.needs_setup(context):
            p = setup_ui.prefs(context)
            _lines(layout, f"Nothing answers at {p.backend_url.strip().rstrip('/')}", width, "CANCEL")
        else:
            _draw_connection(layout, context)
        if setup_ui.needs_setup(context) and not st.running:
            setup_ui.draw_setup_box(layout, context, width, wrap)
            _draw_status(layout, context, server=False)
            return
        if st.running and st.status.startswith("Setting up"):
            _draw_status(layout, context, server=False)
            return
        p = setup_ui.prefs(context)
        if (p.backend_mode != "URL" and not st.running and not backend.running()
                and not connection.connected(p.backend_url)):  # set up, but not started (e.g. after a restart)
            row = layout.row()
            row.scale_y = 1.2
            row.operator("motionclip.start_backend", icon="PLAY")
        s = context.scene.motionclip
        draw_prompt(layout, s, width)
        col = layout.column(align=True)
        col.prop(s, "length_mode")
        if s.length_mode == "SECONDS":
            col.prop(s, "seconds")
        elif s.length_mode == "FRAMES":
            col.prop(s, "frames")
        col.label(text=f"{scene_fps(context.scene):g} fps (scene)", icon="TIME")
        col = layout.column(align=True)
        col.prop(s, "seed")
        col.prop(s, "start_frame")
        layout.prop(s, "target")
        layout.prop(s, "body")
        box = layout.box()
        box.label(text="Blend with a second prompt:")
        box.prop(s, "prompt_b", text="")
        sub = box.row()
        sub.active = bool(s.prompt_b.strip())
        sub.prop(s, "blend", slider=True)
        if not jobs.busy():  # while a job runs, its progress and Cancel take Generate's place
            row = layout.row(align=True)
            row.scale_y = 1.4
            row.operator(MOTIONCLIP_OT_generate.bl_idname,
                         text="Generate Blend" if s.prompt_b.strip() else "Generate", icon="ARMATURE_DATA")
        _draw_status(layout, context, server=False)


class _SubPanel:
    """A closed sub-panel under the main one, shown once the backend is set up."""
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "MotionCLIP"
    bl_parent_id = "MOTIONCLIP_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context):
        return not setup_ui.needs_setup(context)


class MOTIONCLIP_PT_recognize(_SubPanel, bpy.types.Panel):
    bl_idname = "MOTIONCLIP_PT_recognize"
    bl_label = "Recognise and Edit"

    def draw(self, context):
        layout = self.layout
        s = context.scene.motionclip
        ob = context.active_object
        layout.label(text=f"Selected: {ob.name}" if rig.is_smpl_armature(ob) else "Select an SMPL armature",
                     icon="OUTLINER_OB_ARMATURE")
        layout.prop(s, "labels", text="")
        layout.operator(MOTIONCLIP_OT_recognize.bl_idname, icon="VIEWZOOM")
        for item in jobs.state(context).labels:
            row = layout.row()
            row.label(text=item.label)
            row.label(text=f"{item.score:.3f}")
        col = layout.column(align=True)
        col.prop(s, "edit_from")
        col.prop(s, "edit_to")
        col.prop(s, "edit_strength")
        layout.operator(MOTIONCLIP_OT_edit.bl_idname, icon="MODIFIER")


class MOTIONCLIP_PT_model(_SubPanel, bpy.types.Panel):
    """What to expect of the built-in model (its model card's limitations)."""
    bl_idname = "MOTIONCLIP_PT_model"
    bl_label = "Built-in Model: Limits"

    def draw(self, context):
        width = text_columns(context)
        col = self.layout.column(align=True)
        for note in MODEL_NOTES:
            _lines(col, note, width, "DOT")


classes = (MOTIONCLIP_OT_use_prompt, MOTIONCLIP_MT_prompts, MOTIONCLIP_PT_main, MOTIONCLIP_PT_recognize,
           MOTIONCLIP_PT_model)
