"""Procedural chairs: seven kinds, with seats, backs, legs, bases and arms drawn from ranges.

Frame: metres, y up with the floor at y = 0, the chair's front (the open side of the seat) towards +z,
centred on x = 0. `sample_params` draws a kind uniformly, then every parameter from that kind's ranges
(`RANGES`) and its choices (`CHOICES`); `build` turns them into one closed coloured mesh:

* seat: a rounded slab (or a disc for round stools), upholstered (a cushion colour) or of the frame's
  material;
* back: none (stools, some benches), a solid panel (square or arched top), vertical slats, horizontal
  rails, or an open frame, tilted backwards, carried by posts (or an office chair's spine);
* support: four straight legs (square, round or tapered, optional stretchers), splayed legs, an office
  pedestal with a five-arm star base and casters, a tube sled, a stool column with a round foot, two
  panel legs (benches), or a lounge chair's plinth with short feet;
* arms: none, posts with pads, or full side panels (lounge chairs, some benches).
"""

from __future__ import annotations

import colorsys
import dataclasses

import numpy as np
import trimesh

from data.procedural import solid
from data.procedural.solid import box, cylinder, prism, rounded_box, rounded_polygon, sphere

KINDS = ("four_leg", "splayed", "office", "sled", "stool", "bench", "lounge")

# Per kind: (low, high) of each drawn parameter, metres and degrees. seat_height is the seat's top;
# back_height is measured along the tilted back from the seat's top; arm_height above the seat's top.
RANGES = {
    "four_leg": dict(seat_width=(0.38, 0.56), seat_depth=(0.38, 0.52), seat_height=(0.42, 0.50),
                     seat_thickness=(0.02, 0.07), back_height=(0.30, 0.58), back_tilt=(0.0, 14.0),
                     leg_thickness=(0.025, 0.05), leg_splay=(0.0, 0.0), arm_height=(0.18, 0.26)),
    "splayed": dict(seat_width=(0.40, 0.52), seat_depth=(0.38, 0.50), seat_height=(0.42, 0.48),
                    seat_thickness=(0.015, 0.05), back_height=(0.28, 0.45), back_tilt=(4.0, 16.0),
                    leg_thickness=(0.02, 0.035), leg_splay=(5.0, 14.0), arm_height=(0.18, 0.25)),
    "office": dict(seat_width=(0.44, 0.56), seat_depth=(0.42, 0.52), seat_height=(0.42, 0.54),
                   seat_thickness=(0.06, 0.11), back_height=(0.40, 0.72), back_tilt=(4.0, 16.0),
                   leg_thickness=(0.025, 0.04), leg_splay=(0.0, 0.0), arm_height=(0.18, 0.26)),
    "sled": dict(seat_width=(0.40, 0.52), seat_depth=(0.40, 0.50), seat_height=(0.43, 0.49),
                 seat_thickness=(0.015, 0.06), back_height=(0.28, 0.48), back_tilt=(3.0, 14.0),
                 leg_thickness=(0.01, 0.016), leg_splay=(0.0, 0.0), arm_height=(0.18, 0.24)),
    "stool": dict(seat_width=(0.30, 0.45), seat_depth=(0.30, 0.45), seat_height=(0.42, 0.80),
                  seat_thickness=(0.025, 0.08), back_height=(0.0, 0.0), back_tilt=(0.0, 0.0),
                  leg_thickness=(0.02, 0.045), leg_splay=(0.0, 10.0), arm_height=(0.0, 0.0)),
    "bench": dict(seat_width=(0.95, 1.80), seat_depth=(0.34, 0.50), seat_height=(0.40, 0.48),
                  seat_thickness=(0.03, 0.08), back_height=(0.30, 0.50), back_tilt=(4.0, 14.0),
                  leg_thickness=(0.035, 0.06), leg_splay=(0.0, 0.0), arm_height=(0.18, 0.26)),
    "lounge": dict(seat_width=(0.50, 0.75), seat_depth=(0.50, 0.68), seat_height=(0.36, 0.46),
                   seat_thickness=(0.10, 0.18), back_height=(0.35, 0.62), back_tilt=(6.0, 18.0),
                   leg_thickness=(0.03, 0.05), leg_splay=(0.0, 0.0), arm_height=(0.14, 0.26)),
}
# Per kind: the options drawn uniformly (back, legs, arms) and probabilities of yes/no choices.
CHOICES = {
    "four_leg": dict(back=("solid", "arched", "vslats", "hslats", "frame"),
                     legs=("square", "round", "tapered"), arms=("none", "none", "none", "posts")),
    "splayed": dict(back=("solid", "arched", "frame"), legs=("round", "tapered"),
                    arms=("none", "none", "posts")),
    "office": dict(back=("solid", "arched"), legs=("pedestal",), arms=("none", "posts", "posts")),
    "sled": dict(back=("solid", "arched", "vslats", "hslats"), legs=("sled",),
                 arms=("none", "none", "posts")),
    "stool": dict(back=("none",), legs=("square", "round", "tapered", "column"), arms=("none",)),
    "bench": dict(back=("none", "none", "solid", "hslats", "vslats"), legs=("square", "panel"),
                  arms=("none", "none", "panels")),
    "lounge": dict(back=("solid", "arched"), legs=("plinth",), arms=("panels", "panels", "none")),
}
PROBABILITY = dict(stretchers=0.5, cushion=0.5, round_seat=0.5, three_legs=0.3)

WOODS = np.array([(0.76, 0.60, 0.42), (0.55, 0.36, 0.20), (0.35, 0.22, 0.13), (0.86, 0.76, 0.60),
                  (0.45, 0.24, 0.14)])
METALS = np.array([(0.10, 0.10, 0.10), (0.58, 0.58, 0.60), (0.80, 0.80, 0.82), (0.93, 0.93, 0.92)])
PLASTICS = np.array([(0.12, 0.12, 0.12), (0.25, 0.25, 0.27)])  # office bases
FRAME_MATERIAL = {"four_leg": (0.7, 0.3), "splayed": (0.5, 0.5), "office": (0.0, 1.0), "sled": (0.0, 1.0),
                  "stool": (0.6, 0.4), "bench": (0.7, 0.3), "lounge": (1.0, 0.0)}  # P(wood), P(metal)
SEGMENTS = 16


@dataclasses.dataclass(frozen=True)
class ChairParams:
    """Every parameter of one chair (module docstring; ranges in RANGES, options in CHOICES)."""

    kind: str
    seat_width: float
    seat_depth: float
    seat_height: float
    seat_thickness: float
    back_height: float
    back_tilt: float
    leg_thickness: float
    leg_splay: float
    arm_height: float
    back: str
    legs: str
    arms: str
    stretchers: bool
    cushion: bool
    round_seat: bool
    three_legs: bool
    slats: int
    leg_inset: float
    seat_round: float
    frame_colour: tuple
    seat_colour: tuple


def sample_params(rng: np.random.Generator) -> ChairParams:
    """Draws one chair: a kind uniformly, its ranges uniformly, its options and materials."""
    kind = KINDS[int(rng.integers(len(KINDS)))]
    drawn = {name: float(rng.uniform(*bounds)) for name, bounds in RANGES[kind].items()}
    chosen = {name: options[int(rng.integers(len(options)))] for name, options in CHOICES[kind].items()}
    flags = {name: bool(rng.random() < p) for name, p in PROBABILITY.items()}
    flags["cushion"] |= kind in ("office", "lounge")
    flags["round_seat"] &= kind == "stool"
    flags["three_legs"] &= kind == "stool" and chosen["legs"] != "column"
    wood = rng.random() < FRAME_MATERIAL[kind][0]
    palette = WOODS if wood else (PLASTICS if kind == "office" else METALS)
    frame = np.clip(palette[rng.integers(len(palette))] + rng.normal(0.0, 0.025, 3), 0.0, 1.0)
    fabric = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.15, 0.75), rng.uniform(0.25, 0.85))
    seat = fabric if flags["cushion"] else (WOODS[rng.integers(len(WOODS))] if not wood and rng.random() < 0.5
                                            else frame)
    return ChairParams(kind=kind, **drawn, **chosen, **flags, slats=int(rng.integers(3, 7)),
                       leg_inset=float(rng.uniform(0.0, 0.04)), seat_round=float(rng.uniform(0.005, 0.05)),
                       frame_colour=tuple(float(c) for c in frame), seat_colour=tuple(float(c) for c in seat))


def build(p: ChairParams) -> trimesh.Trimesh:
    """One closed, coloured chair mesh from its parameters (module docstring for the frame)."""
    chair = solid.Assembly()
    half_w, half_d = p.seat_width / 2, p.seat_depth / 2
    top, bottom = p.seat_height, p.seat_height - p.seat_thickness
    if p.round_seat:
        seat = cylinder((0, bottom, 0), (0, top, 0), max(half_w, half_d), segments=32)
    else:
        seat = rounded_box((-half_w, bottom, -half_d), (half_w, top, half_d), p.seat_round, segments=8)
    chair.add(p.seat_colour, seat)
    _support(chair, p, bottom)
    if p.back != "none":
        _back(chair, p)
    if p.arms == "posts":
        _arm_posts(chair, p)
    elif p.arms == "panels":
        _arm_panels(chair, p)
    chair.cut(p.frame_colour, box((-10.0, -1.0, -10.0), (10.0, 0.0, 10.0)))  # splayed feet stand on y = 0
    return chair.mesh()


def _support(chair: solid.Assembly, p: ChairParams, bottom: float) -> None:
    """Legs, pedestal, sled, column, panels or plinth under a seat whose underside is at `bottom`."""
    half_w, half_d, t = p.seat_width / 2, p.seat_depth / 2, p.leg_thickness
    overlap = 0.01  # every part reaches this far into the part it joins
    if p.legs == "pedestal":
        _office_base(chair, p, bottom + overlap)
    elif p.legs == "sled":
        x = half_w - 0.03
        rails = []
        for s in (-1, 1):
            corners = [(s * x, bottom + overlap, half_d - 0.04), (s * x, t, half_d - 0.02),
                       (s * x, t, -half_d - 0.02), (s * x, bottom + overlap, -half_d + 0.04)]
            rails += [cylinder(a, b, t, segments=SEGMENTS) for a, b in zip(corners, corners[1:])]
            rails += [sphere(c, t, segments=SEGMENTS) for c in corners[1:3]]
        chair.add(p.frame_colour, *rails)
    elif p.legs == "column":  # stool: one column on a round foot
        foot = min(half_w, half_d) * 0.9
        chair.add(p.frame_colour, cylinder((0, bottom + overlap, 0), (0, 0.0, 0), 1.2 * t, segments=SEGMENTS),
                  cylinder((0, 0.0, 0), (0, 0.03, 0), foot, 0.8 * foot, segments=32))
    elif p.legs == "panel":  # bench: two slab legs
        chair.add(p.frame_colour, *[box((s * (half_w - 0.08) - t / 2, 0.0, -half_d + 0.03),
                                        (s * (half_w - 0.08) + t / 2, bottom + overlap, half_d - 0.03))
                                    for s in (-1, 1)])
    elif p.legs == "plinth":  # lounge chair: low body on short feet
        feet_y = 0.06
        chair.add(p.seat_colour, rounded_box((-half_w - 0.02, feet_y, -half_d),
                                             (half_w + 0.02, bottom + overlap, half_d), 0.03))
        feet = [(x, z) for x in (-half_w + 0.05, half_w - 0.05) for z in (-half_d + 0.05, half_d - 0.05)]
        chair.add(p.frame_colour, *[cylinder((x, feet_y + overlap, z), (x, 0.0, z), t / 2, 0.35 * t,
                                             segments=SEGMENTS) for x, z in feet])
    else:
        _legs(chair, p, bottom + overlap)


def _leg_feet(p: ChairParams) -> list[tuple[np.ndarray, np.ndarray]]:
    """(top [3], foot [3]) of each straight or splayed leg."""
    half_w, half_d = p.seat_width / 2, p.seat_depth / 2
    inset = p.leg_inset + p.leg_thickness
    if p.round_seat or p.three_legs:
        radius = min(half_w, half_d) - inset
        count = 3 if p.three_legs else 4
        angles = 2 * np.pi * (np.arange(count) + 0.5) / count
        tops = [np.array([radius * np.sin(a), 0.0, radius * np.cos(a)]) for a in angles]
    else:
        xs = [-half_w + inset, half_w - inset]
        zs = [-half_d + inset, half_d - inset]
        if p.kind == "bench" and p.seat_width > 1.3:
            xs.insert(1, 0.0)
        tops = [np.array([x, 0.0, z]) for x in xs for z in zs]
    splay = np.tan(np.radians(p.leg_splay)) * p.seat_height
    legs = []
    for top in tops:
        outward = top * (1, 0, 1) / max(np.linalg.norm(top * (1, 0, 1)), 1e-9)
        legs.append((top, top + splay * outward))
    return legs


def _legs(chair: solid.Assembly, p: ChairParams, y_top: float) -> None:
    """Straight or splayed legs from the seat (y_top) to the floor, with optional stretchers."""
    t = p.leg_thickness
    parts, feet = [], []
    for top, foot in _leg_feet(p):
        a, b = top + (0, y_top, 0), foot.copy()
        feet.append((a, b))
        if p.legs == "square":
            parts.append(solid.Manifold.hull_points(np.concatenate(
                [c + 0.5 * t * np.array([(x, 0, z) for x in (-1, 1) for z in (-1, 1)]) for c in (a, b)])))
        else:
            parts.append(cylinder(b, a, t / 2 if p.legs == "round" else 0.3 * t, t / 2, segments=SEGMENTS))
    if p.stretchers:  # a ring of rails between the legs, at 30 % of the seat height
        ring = sorted((a + (b - a) * 0.7 for a, b in feet), key=lambda q: np.arctan2(q[0], q[2]))
        for u, v in zip(ring, ring[1:] + ring[:1]):
            parts.append(cylinder(u, v, 0.3 * t, segments=12))
    chair.add(p.frame_colour, *parts)


def _office_base(chair: solid.Assembly, p: ChairParams, y_top: float) -> None:
    """Gas column, five-arm star base and casters under an office chair's seat."""
    reach = 0.55 * max(p.seat_width, p.seat_depth)
    caster = 0.03
    arm_y = 2 * caster + 0.02
    parts = [cylinder((0, arm_y, 0), (0, y_top, 0), 0.028, segments=SEGMENTS),
             cylinder((0, y_top - 0.06, 0), (0, y_top, 0), 0.08, 0.1, segments=SEGMENTS)]
    casters = []
    for k in range(5):
        angle = 2 * np.pi * k / 5
        end = np.array([reach * np.sin(angle), arm_y, reach * np.cos(angle)])
        parts.append(cylinder((0, arm_y + 0.02, 0), end, 0.03, 0.018, segments=12))
        casters.append(cylinder(end + (0, 0.02, 0), end - (0, arm_y - caster, 0), 0.012, segments=8))
        casters.append(sphere(end * (1, 0, 1) + (0, caster, 0), caster, segments=12))
    chair.add(p.frame_colour, *parts)
    chair.add(PLASTICS[0], *casters)


def _back(chair: solid.Assembly, p: ChairParams) -> None:
    """The back: a panel, slats, rails or frame, tilted by back_tilt about the seat's rear edge."""
    half_d, t = p.seat_depth / 2, p.leg_thickness
    thick = 0.12 if p.kind == "lounge" else (0.06 if p.kind == "office" else 0.025)
    width = p.seat_width - (0.1 if p.kind == "office" else 0.0)
    rear = -half_d + 0.5 * thick
    base_y = p.seat_height - 0.01
    height = p.back_height
    gap = 0.12 if p.kind in ("office", "sled") else 0.0  # office spine / sled posts: back floats above seat

    def place(part):
        """Lying flat (x across, z up the back from 0 to height, y through it) -> tilted back position."""
        return part.translate((0.0, -0.5 * thick, 0.0)).rotate((-90.0 - p.back_tilt, 0.0, 0.0)).translate(
            (0.0, base_y, rear))

    panel_lo = gap
    parts = []
    if p.back in ("solid", "arched"):
        corner = 0.06 if p.kind == "lounge" else 0.03
        outline = rounded_polygon(-width / 2, width / 2, panel_lo, height, corner)
        if p.back == "arched":
            arch = np.linspace(0.0, np.pi, 13)
            rise = min(0.12, 0.3 * (height - panel_lo))
            outline = np.array([(-width / 2, panel_lo), (width / 2, panel_lo)]
                               + [(width / 2 * np.cos(a), height - rise + rise * np.sin(a)) for a in arch])
        parts.append(prism(outline, "y", 0.0, thick))
    else:
        post = max(t, 0.025)
        rails = []
        if p.back == "vslats":
            xs = np.linspace(-width / 2 + post, width / 2 - post, p.slats + 2)[1:-1]
            rails += [box((x - 0.02, 0.0, panel_lo + 0.05), (x + 0.02, thick, height - 0.05)) for x in xs]
        elif p.back == "hslats":
            zs = np.linspace(panel_lo + 0.1, height - 0.04, min(p.slats, 4))
            rails += [box((-width / 2, 0.0, z - 0.03), (width / 2, thick, z + 0.03)) for z in zs]
        rails.append(box((-width / 2, 0.0, height - 0.06), (width / 2, thick, height)))  # top rail
        rails += [box((-width / 2, 0.0, 0.0), (-width / 2 + post, thick, height)),  # side posts
                  box((width / 2 - post, 0.0, 0.0), (width / 2, thick, height))]
        parts += rails
    back = [place(part) for part in parts]
    if p.kind == "office":  # spine from under the seat's centre, behind its rear edge, up behind the back
        tilt = np.radians(p.back_tilt)
        up = np.array([0.0, np.cos(tilt), -np.sin(tilt)])
        behind = np.array([0.0, -np.sin(tilt), -np.cos(tilt)])
        under = np.array([0.0, p.seat_height - p.seat_thickness - 0.02, 0.0])
        offset = (0.5 * thick + 0.02) * behind
        heel = np.array([0.0, under[1], rear]) + offset
        chair.add(p.frame_colour, solid.beam(under, heel, 0.045),
                  solid.beam(heel, np.array([0.0, base_y, rear]) + (gap + 0.15) * up + offset, 0.045))
    elif gap:  # sled: two posts carry the back
        back += [place(box((x - 0.012, 0.0, -0.02), (x + 0.012, thick, gap + 0.05)))
                 for x in (0.04 - width / 2, width / 2 - 0.04)]
    colour = p.seat_colour if p.cushion and p.back in ("solid", "arched") else p.frame_colour
    chair.add(colour, *back)


def _arm_posts(chair: solid.Assembly, p: ChairParams) -> None:
    """Armrests on posts: a post at the front and one near the back on each side, and a pad."""
    half_w, half_d = p.seat_width / 2, p.seat_depth / 2
    y = p.seat_height + p.arm_height
    parts = []
    for s in (-1, 1):
        x = s * (half_w - 0.02)
        parts.append(box((x - 0.015, p.seat_height - 0.02, 0.4 * half_d - 0.015),
                         (x + 0.015, y, 0.4 * half_d + 0.015)))
        if p.kind != "office":
            parts.append(box((x - 0.015, p.seat_height - 0.02, -half_d + 0.02),
                             (x + 0.015, y, -half_d + 0.05)))
        parts.append(rounded_box((x - 0.03, y - 0.005, -half_d + 0.02 if p.kind != "office" else -0.1),
                                 (x + 0.03, y + 0.03, 0.6 * half_d), 0.01, segments=6))
    chair.add(p.frame_colour, *parts)


def _arm_panels(chair: solid.Assembly, p: ChairParams) -> None:
    """Solid side panels from the floor (or the plinth) to arm height, on each side of the seat."""
    half_w, half_d = p.seat_width / 2, p.seat_depth / 2
    width = 0.16 if p.kind == "lounge" else 0.05
    y = p.seat_height + p.arm_height
    panels = []
    for s in (-1, 1):
        x_in, x_out = s * (half_w - 0.01), s * (half_w + width)
        panels.append(rounded_box((min(x_in, x_out), 0.06 if p.kind == "lounge" else 0.0, -half_d),
                                  (max(x_in, x_out), y, half_d + 0.02), 0.03))
    chair.add(p.seat_colour if p.kind == "lounge" else p.frame_colour, *panels)
