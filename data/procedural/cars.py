"""Procedural cars: nine body styles, proportions, cabins, wheels and options drawn from ranges.

Frame: metres, y up with the ground at y = 0, the car's front towards +z, centred on x = 0 (left-right
symmetric) and on z = 0 (bumper to bumper). `sample_params` draws every parameter from the ranges of
its style (`STYLES`, `RANGES`); `build` turns the parameters into one closed coloured mesh:

* lower body: the intersection of three extrusions, the side profile (nose, hood line, deck, tail), the
  front view (rounded shoulders, tucked sill) and the plan (rounded corners);
* greenhouse: the convex hull of the belt-line and roof rectangles, dark glass, with body-coloured roof,
  A, B and C pillars over it, so the windows read as windows;
* four wheels (black tyre, rim) in wheel arches cut into the body, joined by axles;
* lights, grille, bumpers; optionally a spoiler, door mirrors, roof rails; a pickup's open bed.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import trimesh

from data.procedural import solid
from data.procedural.solid import box, cylinder, hull, prism, rounded_box, rounded_polygon

STYLES = ("sedan", "hatchback", "wagon", "coupe", "sports", "city", "suv", "van", "pickup")

# Per style: (low, high) of each drawn parameter. Lengths in metres; *_frac are fractions of `length`,
# greenhouse_frac of `height`. hood: nose to windshield base; deck: tail to rear-window (or cabin) base;
# windshield_run / rear_run: horizontal run of the windshield and of the rear window.
RANGES = {
    "sedan": dict(length=(4.2, 5.0), width=(1.70, 1.90), height=(1.36, 1.52), clearance=(0.12, 0.18),
                  wheel_radius=(0.30, 0.35), greenhouse_frac=(0.30, 0.37), hood_frac=(0.25, 0.33),
                  deck_frac=(0.15, 0.23), windshield_frac=(0.11, 0.17), rear_frac=(0.08, 0.14)),
    "hatchback": dict(length=(3.6, 4.4), width=(1.65, 1.85), height=(1.40, 1.58), clearance=(0.12, 0.17),
                      wheel_radius=(0.29, 0.33), greenhouse_frac=(0.32, 0.40), hood_frac=(0.20, 0.28),
                      deck_frac=(0.02, 0.05), windshield_frac=(0.11, 0.17), rear_frac=(0.04, 0.11)),
    "wagon": dict(length=(4.4, 5.0), width=(1.72, 1.90), height=(1.42, 1.56), clearance=(0.13, 0.18),
                  wheel_radius=(0.30, 0.35), greenhouse_frac=(0.31, 0.37), hood_frac=(0.23, 0.30),
                  deck_frac=(0.02, 0.04), windshield_frac=(0.11, 0.16), rear_frac=(0.02, 0.06)),
    "coupe": dict(length=(4.0, 4.7), width=(1.75, 1.95), height=(1.18, 1.34), clearance=(0.10, 0.14),
                  wheel_radius=(0.31, 0.35), greenhouse_frac=(0.27, 0.34), hood_frac=(0.30, 0.38),
                  deck_frac=(0.04, 0.10), windshield_frac=(0.14, 0.20), rear_frac=(0.22, 0.32)),
    "sports": dict(length=(4.2, 4.8), width=(1.85, 2.05), height=(1.05, 1.22), clearance=(0.08, 0.12),
                   wheel_radius=(0.32, 0.36), greenhouse_frac=(0.28, 0.36), hood_frac=(0.32, 0.42),
                   deck_frac=(0.12, 0.22), windshield_frac=(0.16, 0.22), rear_frac=(0.12, 0.22)),
    "city": dict(length=(2.6, 3.4), width=(1.55, 1.72), height=(1.45, 1.65), clearance=(0.13, 0.17),
                 wheel_radius=(0.27, 0.31), greenhouse_frac=(0.38, 0.46), hood_frac=(0.10, 0.18),
                 deck_frac=(0.01, 0.03), windshield_frac=(0.12, 0.20), rear_frac=(0.02, 0.06)),
    "suv": dict(length=(4.3, 5.0), width=(1.80, 2.00), height=(1.62, 1.88), clearance=(0.19, 0.26),
                wheel_radius=(0.35, 0.41), greenhouse_frac=(0.30, 0.37), hood_frac=(0.21, 0.28),
                deck_frac=(0.02, 0.04), windshield_frac=(0.08, 0.13), rear_frac=(0.02, 0.06)),
    "van": dict(length=(4.5, 5.4), width=(1.80, 2.00), height=(1.85, 2.20), clearance=(0.15, 0.20),
                wheel_radius=(0.32, 0.36), greenhouse_frac=(0.38, 0.48), hood_frac=(0.05, 0.13),
                deck_frac=(0.01, 0.03), windshield_frac=(0.08, 0.15), rear_frac=(0.00, 0.03)),
    "pickup": dict(length=(5.0, 5.9), width=(1.80, 2.02), height=(1.72, 1.95), clearance=(0.20, 0.28),
                   wheel_radius=(0.36, 0.42), greenhouse_frac=(0.30, 0.36), hood_frac=(0.22, 0.28),
                   deck_frac=(0.30, 0.38), windshield_frac=(0.08, 0.12), rear_frac=(0.01, 0.04)),
}
# Drawn for every style (same meaning as above; *_frac of length unless said otherwise).
COMMON_RANGES = dict(
    wheel_width_frac=(0.55, 0.80),      # tyre width / wheel radius
    front_overhang_frac=(0.15, 0.22),   # bumper to front axle
    rear_overhang_frac=(0.15, 0.24),    # bumper to rear axle
    roof_width_frac=(0.72, 0.86),       # roof width / body width
    nose_drop_frac=(0.08, 0.30),        # hood drop towards the nose / (belt - clearance)
    tail_drop_frac=(0.02, 0.20),        # deck drop towards the tail / (belt - clearance)
    shoulder_frac=(0.03, 0.07),         # shoulder rounding / body width
    plan_round_frac=(0.08, 0.22),       # plan-view corner radius / body width
    arch_gap=(0.02, 0.07),              # wheel arch radius minus wheel radius (m)
    rim_frac=(0.55, 0.75),              # rim radius / wheel radius
)
MIN_ROOF_FRAC = 0.18  # a shorter roof is lengthened, half at each end
OPTION_PROBABILITY = dict(spoiler=0.25, mirrors=0.7, roof_rails=0.35)
SPOILER_STYLES = ("sedan", "hatchback", "coupe", "sports")
ROOF_RAIL_STYLES = ("wagon", "suv", "van")

BODY_PALETTE = np.array([  # sRGB body colours of real cars (white, silver, greys, black, ...)
    (0.93, 0.93, 0.92), (0.75, 0.76, 0.78), (0.50, 0.51, 0.53), (0.28, 0.29, 0.31), (0.10, 0.10, 0.11),
    (0.72, 0.08, 0.08), (0.45, 0.05, 0.07), (0.10, 0.22, 0.55), (0.12, 0.40, 0.75), (0.07, 0.15, 0.30),
    (0.10, 0.35, 0.20), (0.45, 0.55, 0.30), (0.95, 0.78, 0.10), (0.92, 0.45, 0.08), (0.75, 0.68, 0.55),
    (0.40, 0.27, 0.17), (0.55, 0.75, 0.80), (0.50, 0.20, 0.50)])
RIM_PALETTE = np.array([(0.78, 0.78, 0.80), (0.55, 0.56, 0.58), (0.15, 0.15, 0.16), (0.70, 0.62, 0.40)])
GLASS = (0.10, 0.13, 0.17)
TYRE = (0.05, 0.05, 0.05)
TRIM = (0.12, 0.12, 0.13)  # grille, bumpers' lower parts, arch liners, bed liner
HEADLIGHT = (0.95, 0.93, 0.82)
TAILLIGHT = (0.78, 0.06, 0.05)
WHEEL_SEGMENTS = 24


@dataclasses.dataclass(frozen=True)
class CarParams:
    """Every parameter of one car (module docstring; ranges in RANGES / COMMON_RANGES)."""

    style: str
    length: float
    width: float
    height: float
    clearance: float
    wheel_radius: float
    greenhouse_frac: float
    hood_frac: float
    deck_frac: float
    windshield_frac: float
    rear_frac: float
    wheel_width_frac: float
    front_overhang_frac: float
    rear_overhang_frac: float
    roof_width_frac: float
    nose_drop_frac: float
    tail_drop_frac: float
    shoulder_frac: float
    plan_round_frac: float
    arch_gap: float
    rim_frac: float
    spoiler: bool
    mirrors: bool
    roof_rails: bool
    body_colour: tuple
    rim_colour: tuple
    glass_colour: tuple


def sample_params(rng: np.random.Generator) -> CarParams:
    """Draws one car: a style uniformly, then every range uniformly, options and colours."""
    style = STYLES[int(rng.integers(len(STYLES)))]
    drawn = {name: float(rng.uniform(*bounds)) for name, bounds in {**RANGES[style], **COMMON_RANGES}.items()}
    options = {name: bool(rng.random() < p) for name, p in OPTION_PROBABILITY.items()}
    options["spoiler"] &= style in SPOILER_STYLES
    options["roof_rails"] &= style in ROOF_RAIL_STYLES
    body = np.clip(BODY_PALETTE[rng.integers(len(BODY_PALETTE))] + rng.normal(0.0, 0.03, 3), 0.0, 1.0)
    rim = RIM_PALETTE[rng.integers(len(RIM_PALETTE))]
    glass = np.clip(np.asarray(GLASS) + rng.uniform(-0.04, 0.06), 0.0, 1.0)
    return CarParams(style=style, **drawn, **options, body_colour=tuple(float(c) for c in body),
                     rim_colour=tuple(float(c) for c in rim), glass_colour=tuple(float(c) for c in glass))


def build(p: CarParams) -> trimesh.Trimesh:
    """One closed, coloured car mesh from its parameters (module docstring for the frame)."""
    half_l, half_w = p.length / 2, p.width / 2
    belt = p.height * (1.0 - p.greenhouse_frac)
    side = belt - p.clearance  # height of the body side below the belt line
    z_windshield = half_l - p.hood_frac * p.length  # windshield base
    z_rear = -half_l + p.deck_frac * p.length       # rear window (pickup: cabin) base
    z_roof_front = z_windshield - p.windshield_frac * p.length
    z_roof_rear = z_rear + p.rear_frac * p.length
    if z_roof_front - z_roof_rear < MIN_ROOF_FRAC * p.length:
        squeeze = (MIN_ROOF_FRAC * p.length - (z_roof_front - z_roof_rear)) / 2
        z_roof_front, z_roof_rear = z_roof_front + squeeze, z_roof_rear - squeeze
    z_front_axle = half_l - p.front_overhang_frac * p.length
    z_rear_axle = -half_l + p.rear_overhang_frac * p.length
    radius, tyre_width = p.wheel_radius, p.wheel_width_frac * p.wheel_radius
    track_half = half_w - 0.5 * tyre_width - 0.015  # tyre outer face 1.5 cm inside the body side
    roof_half = 0.5 * p.roof_width_frac * p.width
    roof_thick = 0.05
    car = solid.Assembly()

    # Lower body: side profile ∩ front view ∩ plan.
    nose_y = belt - p.nose_drop_frac * side
    tail_y = belt - p.tail_drop_frac * side
    bumper = min(0.25 * side, 0.12)
    profile = [(-half_l + 0.12, p.clearance), (half_l - 0.15, p.clearance), (half_l, p.clearance + bumper),
               (half_l, nose_y - 0.06), (half_l - 0.12, nose_y), (z_windshield, belt),
               (z_rear, belt), (-half_l + 0.08, tail_y), (-half_l, tail_y - 0.05),
               (-half_l, p.clearance + bumper)]
    shoulder = p.shoulder_frac * p.width
    front_half = [(half_w - 0.04, p.clearance), (half_w, p.clearance + 0.1), (half_w, belt - shoulder),
                  (half_w - shoulder, belt + 0.01), (half_w - shoulder, belt + 2.0)]  # right half, bottom up
    front_view = front_half + [(-x, y) for x, y in reversed(front_half)]
    plan = rounded_polygon(-half_w, half_w, -half_l, half_l, p.plan_round_frac * p.width)
    body = (prism(profile, "x", -half_w, half_w) ^ prism(front_view, "z", -half_l - 0.1, half_l + 0.1)
            ^ prism(plan, "y", 0.0, p.height))
    car.add(p.body_colour, body)

    # Greenhouse: glass hull, then the roof and pillars over it in the body colour.
    glass_half = half_w - shoulder - 0.01
    corners = {}  # (side -1/1, bottom?, front?) -> [3] corner of the greenhouse
    for s in (-1, 1):
        for front, z_bottom, z_top in ((True, z_windshield, z_roof_front), (False, z_rear, z_roof_rear)):
            corners[(s, True, front)] = np.array([s * glass_half, belt - 0.03, z_bottom])
            corners[(s, False, front)] = np.array([s * roof_half, p.height - roof_thick, z_top])
    car.add(p.glass_colour, hull(list(corners.values())))
    roof = hull([(s * (roof_half + 0.02), p.height - roof_thick - 0.005, z) for s in (-1, 1)
                 for z in (z_roof_rear - 0.02, z_roof_front + 0.02)]
                + [(s * (roof_half - 0.04), p.height, z) for s in (-1, 1)
                   for z in (z_roof_rear + 0.04, z_roof_front - 0.06)])
    car.add(p.body_colour, roof)
    pillar = 0.06
    pillars = []
    for s in (-1, 1):
        pillars.append(solid.beam(corners[(s, True, True)], corners[(s, False, True)], pillar))  # A
        rear_width = np.array([0.0, 0.0, 0.08 if p.style in ("sedan", "coupe") else 0.2])  # C/D pillar
        bottom, top = corners[(s, True, False)], corners[(s, False, False)]
        pillars.append(hull(np.concatenate([solid.beam_points(bottom + dz, top + dz, pillar)
                                            for dz in (0.0, rear_width)])))
        b_bottom = corners[(s, True, True)] + 0.45 * (corners[(s, True, False)] - corners[(s, True, True)])
        b_top = corners[(s, False, True)] + 0.45 * (corners[(s, False, False)] - corners[(s, False, True)])
        pillars.append(solid.beam(b_bottom, b_top, pillar))  # B
        if p.style == "van":
            pillars.append(solid.beam(b_bottom + 0.6 * (corners[(s, True, False)] - b_bottom),
                                      b_top + 0.6 * (corners[(s, False, False)] - b_top), pillar))
    car.add(p.body_colour, *pillars)

    if p.style == "pickup":  # open bed behind the cabin
        car.cut(TRIM, box((-half_w + 0.07, belt - 0.45 * side, -half_l + 0.07),
                          (half_w - 0.07, belt + 1.0, z_rear - 0.06)))

    # Wheels in arches, joined by axles.
    arch = radius + p.arch_gap
    arches, tyres, rims, axles = [], [], [], []
    for z_axle in (z_front_axle, z_rear_axle):
        centre = np.array([0.0, radius, z_axle])
        axles.append(cylinder(centre - (track_half, 0, 0), centre + (track_half, 0, 0), 0.06, segments=12))
        for s in (-1, 1):
            inner, outer = s * (track_half - 0.5 * tyre_width), s * (track_half + 0.5 * tyre_width)
            arches.append(cylinder(centre + (inner - s * 0.04, 0, 0), centre + (s * (half_w + 0.1), 0, 0),
                                   arch, segments=WHEEL_SEGMENTS))
            tyres.append(cylinder(centre + (inner, 0, 0), centre + (outer, 0, 0), radius,
                                  segments=WHEEL_SEGMENTS))
            rims.append(cylinder(centre + (outer - s * 0.03, 0, 0), centre + (outer + s * 0.008, 0, 0),
                                 p.rim_frac * radius, segments=WHEEL_SEGMENTS))
    car.cut(TRIM, *arches)
    car.add(TRIM, *axles)
    car.add(TYRE, *tyres)
    car.add(p.rim_colour, *rims)

    # Lights, grille, bumpers.
    light_h = min(0.1, 0.3 * side)
    light_w = 0.16 + 0.06 * p.plan_round_frac / 0.22
    lamp_x = half_w - p.plan_round_frac * p.width * 0.6
    front_lights = [box((s * lamp_x - 0.5 * light_w, nose_y - 0.06 - light_h, half_l - 0.15),
                        (s * lamp_x + 0.5 * light_w, nose_y - 0.06, half_l + 0.01)) for s in (-1, 1)]
    car.add(HEADLIGHT, *front_lights)
    car.add(TAILLIGHT, *[box((s * lamp_x - 0.5 * light_w, tail_y - 0.07 - light_h, -half_l - 0.01),
                             (s * lamp_x + 0.5 * light_w, tail_y - 0.07, -half_l + 0.15)) for s in (-1, 1)])
    grille_half = max(0.15, lamp_x - 0.5 * light_w - 0.06)
    car.add(TRIM, box((-grille_half, nose_y - 0.08 - light_h, half_l - 0.15),
                      (grille_half, nose_y - 0.07, half_l + 0.008)))
    bumper_half = half_w - 0.6 * p.plan_round_frac * p.width
    for z0, z1 in ((half_l - 0.2, half_l + 0.03), (-half_l - 0.03, -half_l + 0.2)):
        car.add(TRIM, rounded_box((-bumper_half, p.clearance + 0.02, z0),
                                  (bumper_half, p.clearance + 0.02 + bumper, z1), 0.03, segments=6))

    # Options.
    if p.spoiler:
        if p.style == "hatchback":  # lip over the rear window
            car.add(p.body_colour, box((-roof_half + 0.02, p.height - 0.04, z_roof_rear - 0.12),
                                       (roof_half - 0.02, p.height + 0.005, z_roof_rear + 0.02)))
        else:  # wing on two posts over the deck
            wing_y = belt + 0.12
            wing = box((-half_w + 0.1, wing_y, -half_l + 0.03), (half_w - 0.1, wing_y + 0.035, -half_l + 0.28))
            posts = [box((s * 0.45 * half_w - 0.03, belt - 0.05, -half_l + 0.12),
                         (s * 0.45 * half_w + 0.03, wing_y + 0.01, -half_l + 0.2)) for s in (-1, 1)]
            car.add(p.body_colour, wing, *posts)
    if p.mirrors:
        mirror_y = belt + 0.08
        car.add(p.body_colour, *[hull([(s * (glass_half - 0.05), mirror_y - 0.03, z_windshield - 0.16),
                                       (s * (glass_half - 0.05), mirror_y + 0.03, z_windshield - 0.12),
                                       (s * (half_w + 0.13), mirror_y - 0.05, z_windshield - 0.2),
                                       (s * (half_w + 0.13), mirror_y + 0.06, z_windshield - 0.2),
                                       (s * (half_w + 0.13), mirror_y - 0.05, z_windshield - 0.12),
                                       (s * (half_w + 0.13), mirror_y + 0.06, z_windshield - 0.12)])
                                 for s in (-1, 1)])
    if p.roof_rails:
        car.add(TRIM, *[box((s * (roof_half - 0.1) - 0.025, p.height - 0.01, z_roof_rear + 0.05),
                            (s * (roof_half - 0.1) + 0.025, p.height + 0.05, z_roof_front - 0.1))
                        for s in (-1, 1)])
    return car.mesh()
