"""Curated code tables: which ICD-10, OPCS-4, histology and self-report codes appear, how often.

Frequencies follow what UK Biobank's linked hospital (HES/SMR/PEDW), cancer and death records
look like for a cohort aged 40-70 at recruitment and followed to 2022: hypertension, lipid
disorders, diverticular disease, gastritis and reflux, cataract, osteoarthritis, ischaemic heart
disease and type 2 diabetes lead; Z-codes record histories, family histories and implants; each
admission type brings its usual companion codes and procedures. Every code here must exist (as a
selectable leaf) in the dictionary's codings: the unit tests check that.

Shares are of the whole cohort unless a condition is sex-specific (then of that sex).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

Weighted = tuple[tuple[str, float], ...]
Bundle = tuple[tuple[str, ...], float]  # OPCS-4 codes recorded together, and their chance

# fmt: off
HES_START = {0: "1997-04-01", 1: "1996-04-01", 2: "1998-04-01"}  # England, Scotland, Wales (ICD-10)

# UK Biobank Showcase: 4,131,355 ICD-10 items over 410,320 people (10.1 each) and 3,640,096
# OPCS-4 items over 410,256 people (8.9 each). Used to tune codes per admission.
ICD10_PER_PERSON = 4_131_355 / 410_320
OPCS4_PER_PERSON = 3_640_096 / 410_256


@dataclass(frozen=True)
class Condition:
    """A condition a person develops; its onset date drives when hospital records show it."""

    name: str
    icd10: Weighted  # one is chosen per person, by weight
    share: float  # of the cohort (or of one sex) with onset before the censor date
    risk: Mapping[str, float] = field(default_factory=dict)  # log-odds per unit of a factor
    sex: str = ""  # "F" or "M": only that sex
    baseline: str = ""  # a baseline state: everyone with it has the condition from before
    record: float = 0.5  # chance that an admission after onset codes it
    admits: bool = False  # onset itself is an admission (heart attack, cataract surgery …)
    slope: float = 0.07  # rise of incidence per year of age, for onset dates
    also: Weighted = ()  # further codes at the onset admission, with their chances
    later: Weighted = ()  # codes at a later admission (histories, implants), with chances
    ops: tuple[Bundle, ...] = ()  # procedures at the onset admission
    lateral: bool = False  # procedures carry a right/left side code (Z94.2/Z94.3)
    lifelong: bool = False  # a trait (allergy, family history) present from birth


CONDITIONS: tuple[Condition, ...] = (
    # --- traits recorded when someone is admitted
    Condition("penicillin_allergy", (("Z880", 1.0),), 0.065, record=0.5, lifelong=True),
    Condition("other_allergy", (("Z881", 0.5), ("Z888", 0.5)), 0.03, record=0.4, lifelong=True),
    Condition("fh_heart", (("Z824", 1.0),), 0.05, {"father_heart": 3.0}, record=0.12,
              lifelong=True),
    Condition("fh_stroke", (("Z823", 1.0),), 0.01, {"father_stroke": 3.0}, record=0.1,
              lifelong=True),
    Condition("fh_diabetes", (("Z833", 1.0),), 0.025, {"father_diabetes": 3.0}, record=0.1,
              lifelong=True),
    Condition("fh_bowel_cancer", (("Z800", 1.0),), 0.03, {"father_bowel_cancer": 3.0},
              record=0.3, lifelong=True),
    Condition("fh_lung_cancer", (("Z801", 1.0),), 0.006, {"father_lung_cancer": 3.0},
              record=0.1, lifelong=True),
    Condition("fh_breast_cancer", (("Z803", 1.0),), 0.04, sex="F", record=0.25, lifelong=True),
    Condition("tobacco", (("Z720", 0.6), ("F171", 0.4)), 0.10,
              {"current": 4.5, "former": 0.8}, record=0.35, lifelong=True),
    Condition("ex_smoker", (("Z864", 1.0),), 0.08, {"former": 3.0, "current": 1.0},
              record=0.25, lifelong=True),
    # --- cardiometabolic
    Condition("hypertension", (("I10", 1.0),), 0.37,
              {"sbp20": 0.9, "age10": 0.4, "bmi5": 0.35, "diabetes": 0.5},
              baseline="hypertension", record=0.75),
    Condition("diabetes", (("E119", 0.56), ("E118", 0.09), ("E114", 0.06), ("E113", 0.05),
                           ("E116", 0.06), ("E117", 0.04), ("E112", 0.04), ("E111", 0.01),
                           ("E149", 0.09)), 0.095,
              {"hba1c10": 2.2, "bmi5": 0.5, "age10": 0.3, "male": 0.3, "south_asian": 0.8},
              baseline="diabetes_t2", record=0.85, later=(("Z922", 0.1),)),
    Condition("type1_diabetes", (("E109", 0.7), ("E108", 0.1), ("E103", 0.1), ("E101", 0.1)),
              0.004, baseline="type1", record=0.9),
    Condition("hyperlipidaemia", (("E785", 0.75), ("E780", 0.25)), 0.17,
              {"statin": 2.5, "ldl": 0.4, "age10": 0.4, "diabetes": 0.6}, record=0.45),
    Condition("obesity", (("E669", 0.9), ("E668", 0.1)), 0.08, {"bmi5": 2.6}, record=0.3),
    Condition("hypothyroidism", (("E039", 1.0),), 0.07, {"female": 1.5, "age10": 0.3},
              record=0.6),
    Condition("ihd", (("I251", 0.8), ("I259", 0.2)), 0.11,
              {"age10": 0.7, "male": 0.9, "current": 0.6, "former": 0.2, "diabetes": 0.6,
               "hypertension": 0.5, "ldl": 0.25, "father_heart": 0.3, "south_asian": 0.5},
              baseline="chd", record=0.6, later=(("Z867", 0.15), ("Z922", 0.3))),
    Condition("mi", (("I214", 0.45), ("I219", 0.35), ("I210", 0.1), ("I211", 0.1)), 0.045,
              {"ihd": 2.5, "age10": 0.5, "male": 0.8, "current": 0.7, "diabetes": 0.5},
              baseline="mi", admits=True, slope=0.05,
              also=(("I251", 0.75), ("E785", 0.35), ("R074", 0.2), ("I10", 0.3)),
              later=(("I252", 0.5), ("Z955", 0.3)),
              ops=((("K634", "K751"), 0.3), (("K635", "K753"), 0.12), (("K634",), 0.25),
                   (("K401", "Y731"), 0.02), (("K402",), 0.03), (("K403",), 0.02))),
    Condition("angina", (("I209", 0.6), ("I208", 0.2), ("I200", 0.2)), 0.05,
              {"ihd": 2.5, "age10": 0.4, "male": 0.6, "current": 0.4},
              baseline="angina", admits=True, slope=0.05, also=(("I251", 0.5),),
              ops=((("K634",), 0.35), (("K635", "K751"), 0.15), (("U194",), 0.1))),
    Condition("af", (("I489", 0.45), ("I480", 0.35), ("I481", 0.15), ("I483", 0.05)), 0.10,
              {"age10": 1.0, "male": 0.5, "bmi5": 0.3, "hypertension": 0.4, "ihd": 0.5},
              baseline="af", record=0.7, slope=0.1, later=(("Z921", 0.4),)),
    Condition("heart_failure", (("I509", 0.6), ("I500", 0.3), ("I501", 0.1)), 0.04,
              {"age10": 1.0, "male": 0.5, "ihd": 1.5, "mi": 1.0, "af": 1.0, "diabetes": 0.5,
               "bmi5": 0.4}, admits=True, record=0.7, slope=0.1, also=(("J81", 0.1),),
              ops=((("U201",), 0.3),)),
    Condition("pacemaker", (("I442", 0.4), ("I495", 0.35), ("I441", 0.25)), 0.02,
              {"age10": 1.2, "male": 0.4, "af": 0.8}, admits=True, record=0.3, slope=0.11,
              later=(("Z950", 0.6),), ops=((("K606",), 0.5), (("K605",), 0.3))),
    Condition("valve", (("I350", 0.5), ("I340", 0.3), ("I351", 0.2)), 0.025,
              {"age10": 1.0, "male": 0.3}, record=0.5, slope=0.1),
    Condition("stroke", (("I639", 0.5), ("I64", 0.35), ("I619", 0.1), ("I634", 0.05)), 0.035,
              {"age10": 1.0, "hypertension": 0.6, "af": 1.0, "current": 0.6, "diabetes": 0.5},
              baseline="stroke", admits=True, record=0.5, slope=0.09,
              also=(("I10", 0.4), ("R470", 0.15), ("E785", 0.2)),
              later=(("Z867", 0.2), ("I693", 0.3)), ops=((("U051",), 0.6), (("U052",), 0.2))),
    Condition("tia", (("G459", 0.9), ("G458", 0.1)), 0.02,
              {"age10": 1.0, "hypertension": 0.5, "af": 0.7}, admits=True, record=0.3,
              ops=((("U051",), 0.4),)),
    Condition("pvd", (("I739", 0.8), ("I7020", 0.2)), 0.015,
              {"current": 1.2, "packs10": 0.3, "diabetes": 0.8, "age10": 0.7}, record=0.5),
    Condition("aaa", (("I714", 0.9), ("I713", 0.1)), 0.008,
              {"male": 1.5, "current": 1.0, "packs10": 0.2, "age10": 1.0}, record=0.6,
              slope=0.1),
    Condition("vte", (("I802", 0.35), ("I269", 0.35), ("I803", 0.15), ("I829", 0.15)), 0.03,
              {"age10": 0.5, "bmi5": 0.4}, admits=True, record=0.3,
              later=(("Z921", 0.5), ("Z867", 0.3)), ops=((("U354",), 0.3),)),
    Condition("varicose_veins", (("I839", 0.9), ("I830", 0.1)), 0.03, {"female": 0.5},
              admits=True, record=0.2, slope=0.0,
              ops=((("L881",), 0.25), (("L882",), 0.15), (("L851",), 0.15))),
    # --- respiratory
    Condition("copd", (("J449", 0.6), ("J441", 0.25), ("J440", 0.15)), 0.06,
              {"packs10": 0.6, "current": 0.7, "fev_low": 1.3, "age10": 0.6, "tdi": 0.3},
              baseline="copd", record=0.7, slope=0.09),
    Condition("asthma", (("J459", 0.85), ("J450", 0.15)), 0.08,
              {"female": 0.3, "bmi5": 0.2, "tdi": 0.2}, baseline="asthma", record=0.5,
              slope=0.0),
    Condition("pneumonia", (("J189", 0.7), ("J181", 0.2), ("J180", 0.1)), 0.07,
              {"age10": 1.0, "current": 0.6, "copd": 1.0, "diabetes": 0.4}, admits=True,
              record=0.05, slope=0.1, also=(("N179", 0.1), ("E871", 0.08), ("R060", 0.1)),
              ops=((("U071",), 0.1),)),
    Condition("sleep_apnoea", (("G473", 1.0),), 0.025, {"bmi5": 1.2, "male": 1.0},
              record=0.5),
    # --- kidney
    Condition("ckd", (("N183", 0.6), ("N189", 0.25), ("N184", 0.1), ("N185", 0.05)), 0.06,
              {"age10": 1.2, "diabetes": 0.9, "hypertension": 0.7, "creat": 1.0}, record=0.6,
              slope=0.1),
    Condition("aki", (("N179", 1.0),), 0.035,
              {"age10": 1.0, "diabetes": 0.5, "ckd": 1.5, "heart_failure": 1.0}, admits=True,
              record=0.05, slope=0.1, also=(("E86", 0.2), ("E875", 0.1))),
    # --- mental health and neurology
    Condition("depression", (("F329", 0.7), ("F320", 0.1), ("F321", 0.1), ("F322", 0.1)),
              0.08, {"female": 0.6, "tdi": 0.3, "current": 0.4}, baseline="depression",
              record=0.4, slope=0.0),
    Condition("anxiety", (("F419", 0.8), ("F411", 0.2)), 0.05, {"female": 0.6, "tdi": 0.2},
              record=0.35, slope=0.0),
    Condition("alcohol", (("F101", 0.6), ("F102", 0.25), ("F100", 0.15)), 0.025,
              {"alcohol": 1.8, "male": 0.9, "tdi": 0.4, "current": 0.8}, record=0.6,
              slope=0.0),
    Condition("liver", (("K703", 0.35), ("K709", 0.2), ("K746", 0.25), ("K760", 0.2)), 0.012,
              {"alcohol": 1.2, "bmi5": 0.5, "diabetes": 0.5}, record=0.7, slope=0.03),
    Condition("dementia", (("F03", 0.45), ("G309", 0.3), ("F019", 0.15), ("F009", 0.1)), 0.022,
              {"age10": 2.0, "diabetes": 0.3, "stroke": 0.8}, record=0.85, slope=0.16),
    Condition("parkinsons", (("G20", 1.0),), 0.008, {"age10": 1.2, "male": 0.5}, record=0.8,
              slope=0.1),
    Condition("epilepsy", (("G409", 0.8), ("G400", 0.2)), 0.008, record=0.7, slope=0.0),
    Condition("migraine", (("G439", 1.0),), 0.012, {"female": 1.0}, record=0.3, slope=-0.02),
    # --- eyes
    Condition("cataract", (("H259", 0.3), ("H251", 0.35), ("H269", 0.25), ("H252", 0.1)), 0.15,
              {"age10": 1.5, "diabetes": 0.5, "current": 0.3}, admits=True, record=0.1,
              slope=0.12, later=(("Z961", 0.35),),
              ops=((("C751", "C712"), 0.9),), lateral=True),
    Condition("glaucoma", (("H401", 0.8), ("H409", 0.2)), 0.025, {"age10": 1.0, "black": 1.0},
              record=0.4, slope=0.1, ops=((("C601",), 0.05),), lateral=True),
    Condition("macular", (("H353", 1.0),), 0.02, {"age10": 1.8, "current": 0.5}, admits=True,
              record=0.3, slope=0.15, ops=((("C794",), 0.6),), lateral=True),
    # --- musculoskeletal
    Condition("hip_oa", (("M169", 0.6), ("M161", 0.4)), 0.055,
              {"age10": 1.0, "bmi5": 0.4, "female": 0.3}, admits=True, record=0.4, slope=0.1,
              later=(("Z966", 0.5),),
              ops=((("W371",), 0.25), (("W381",), 0.2), (("W931",), 0.15), (("W391",), 0.1)),
              lateral=True),
    Condition("knee_oa", (("M179", 0.6), ("M171", 0.4)), 0.09,
              {"age10": 0.9, "bmi5": 0.8, "female": 0.3}, admits=True, record=0.4, slope=0.09,
              later=(("Z966", 0.5),),
              ops=((("W401",), 0.3), (("W421",), 0.1), (("W822",), 0.1), (("W903",), 0.1)),
              lateral=True),
    Condition("osteoporosis", (("M8199", 0.7), ("M8195", 0.3)), 0.03,
              {"female": 1.8, "age10": 1.0, "current": 0.3, "bmi5": -0.5}, record=0.5,
              slope=0.1, ops=((("U131",), 0.2),)),
    Condition("hip_fracture", (("S7200", 0.6), ("S7210", 0.3), ("S7220", 0.1)), 0.012,
              {"age10": 1.6, "female": 0.7, "osteoporosis": 1.0, "bmi5": -0.3}, admits=True,
              record=0.1, slope=0.15, also=(("W199", 0.5), ("M8199", 0.15)),
              ops=((("W461",), 0.35), (("W241",), 0.3), (("W191",), 0.2))),
    Condition("wrist_fracture", (("S5250", 0.8), ("S5260", 0.2)), 0.02,
              {"female": 1.0, "osteoporosis": 0.8}, admits=True, record=0.05, slope=0.04,
              also=(("W0109", 0.3), ("W199", 0.2)), ops=((("W262",), 0.3), (("W251",), 0.2))),
    Condition("gout", (("M1099", 0.7), ("M1097", 0.3)), 0.025,
              {"male": 1.3, "bmi5": 0.5, "alcohol": 0.4, "ckd": 0.6}, record=0.5),
    Condition("rheumatoid", (("M0699", 0.8), ("M0599", 0.2)), 0.012, {"female": 0.9},
              record=0.7, slope=0.03),
    Condition("carpal_tunnel", (("G560", 1.0),), 0.035,
              {"female": 0.7, "bmi5": 0.3, "diabetes": 0.4}, admits=True, record=0.2,
              slope=0.0, ops=((("A651",), 0.85),), lateral=True),
    Condition("dupuytren", (("M7200", 1.0),), 0.012, {"male": 1.2, "alcohol": 0.3,
              "diabetes": 0.5}, admits=True, record=0.3, ops=((("T521",), 0.6),),
              lateral=True),
    Condition("back", (("M5456", 0.4), ("M5116", 0.25), ("M4806", 0.2), ("M5446", 0.15)),
              0.06, {"bmi5": 0.2, "tdi": 0.2}, admits=True, record=0.2, slope=0.02,
              ops=((("A521",), 0.2), (("A577",), 0.15), (("V544",), 0.1), (("U055",), 0.3))),
    # --- digestive
    Condition("diverticular", (("K573", 0.85), ("K579", 0.1), ("K572", 0.05)), 0.15,
              {"age10": 1.0, "bmi5": 0.2, "female": 0.2}, record=0.3, slope=0.09),
    Condition("gord", (("K219", 0.8), ("K210", 0.2)), 0.12, {"bmi5": 0.4, "age10": 0.3},
              record=0.35, slope=0.03),
    Condition("hiatus_hernia", (("K449", 1.0),), 0.08, {"bmi5": 0.4, "age10": 0.5},
              record=0.3),
    Condition("ibs", (("K589", 0.7), ("K580", 0.3)), 0.02, {"female": 1.0}, record=0.3,
              slope=-0.02),
    Condition("ibd", (("K519", 0.6), ("K509", 0.4)), 0.01, record=0.8, slope=0.0),
    Condition("coeliac", (("K900", 1.0),), 0.006, {"female": 0.6}, record=0.6, slope=0.0),
    Condition("gallstones", (("K802", 0.6), ("K801", 0.15), ("K805", 0.15), ("K800", 0.1)),
              0.06, {"female": 0.8, "bmi5": 0.5}, admits=True, record=0.2, slope=0.03,
              ops=((("J183", "Y752"), 0.5), (("J183",), 0.1), (("U081",), 0.1))),
    Condition("appendicitis", (("K358", 0.5), ("K359", 0.3), ("K352", 0.2)), 0.008,
              admits=True, record=0.0, slope=-0.01, ops=((("H011",), 0.85),)),
    Condition("inguinal_hernia", (("K409", 1.0),), 0.10, {"age10": 0.6}, sex="M",
              admits=True, record=0.1, slope=0.04,
              ops=((("T202",), 0.55), (("T202", "Y752"), 0.2)), lateral=True),
    Condition("umbilical_hernia", (("K429", 1.0),), 0.012, {"bmi5": 0.6}, admits=True,
              record=0.1, ops=((("T241",), 0.6),)),
    # --- genitourinary and breast
    Condition("bph", (("N40", 1.0),), 0.15, {"age10": 1.2}, sex="M", record=0.45, slope=0.1,
              also=(("R33", 0.1), ("R391", 0.1)), ops=((("M653",), 0.1), (("M651",), 0.08))),
    Condition("kidney_stone", (("N200", 0.6), ("N201", 0.4)), 0.02, {"male": 0.6},
              admits=True, record=0.2, slope=0.0, also=(("N23", 0.3),),
              ops=((("M301",), 0.2), (("U372",), 0.3))),
    Condition("prolapse", (("N811", 0.4), ("N812", 0.35), ("N813", 0.25)), 0.05,
              {"age10": 0.6, "bmi5": 0.3}, sex="F", admits=True, record=0.2,
              ops=((("P221",), 0.4),)),
    Condition("fibroids", (("D259", 1.0),), 0.06, {"black": 1.2}, sex="F", admits=True,
              record=0.2, slope=-0.06, ops=((("Q074",), 0.35), (("Q189",), 0.2))),
    # --- skin and blood
    Condition("cellulitis", (("L039", 0.6), ("L031", 0.4)), 0.04,
              {"bmi5": 0.5, "diabetes": 0.6, "age10": 0.5}, admits=True, record=0.05),
    Condition("psoriasis", (("L409", 1.0),), 0.012, {"bmi5": 0.3, "current": 0.4},
              record=0.4, slope=0.0),
    Condition("anaemia", (("D649", 0.6), ("D509", 0.4)), 0.07,
              {"female": 0.4, "age10": 0.6, "ckd": 0.8}, record=0.3),
)

# A few of the ICD-10 codes above exist only with a 5th character (site) in coding 19 (M10.99
# …); the tables use those leaves.


@dataclass(frozen=True)
class Theme:
    """A kind of admission: its main diagnosis, companion codes and usual procedures."""

    name: str
    weight: float  # share of acute admissions at age 60
    primary: Weighted
    secondary: Weighted = ()  # further codes, each with its chance
    ops: tuple[Bundle, ...] = ()  # one bundle at most, chosen with these chances
    age_slope: float = 0.0  # log-weight per 10 years of age at admission
    sex: str = ""


THEMES: tuple[Theme, ...] = (
    Theme("colonoscopy", 0.11,
          (("K573", 0.22), ("K635", 0.2), ("D126", 0.1), ("K649", 0.1), ("K625", 0.06),
           ("K921", 0.03), ("R194", 0.06), ("K590", 0.06), ("K529", 0.04), ("Z121", 0.08),
           ("Z860", 0.05)),
          (("K573", 0.25), ("K635", 0.15), ("K649", 0.15), ("D126", 0.06), ("K648", 0.05)),
          ((("H229",), 0.3), (("H221",), 0.25), (("H251",), 0.1), (("H201",), 0.1),
           (("H259",), 0.1)), age_slope=0.3),
    Theme("gastroscopy", 0.08,
          (("K219", 0.2), ("K449", 0.14), ("K297", 0.13), ("K295", 0.08), ("K210", 0.08),
           ("R13", 0.06), ("R101", 0.08), ("K30", 0.07), ("D509", 0.06), ("K227", 0.04),
           ("K269", 0.03), ("K298", 0.03)),
          (("K449", 0.2), ("K297", 0.15), ("K219", 0.12), ("K295", 0.05)),
          ((("G451",), 0.45), (("G459",), 0.25), (("G458",), 0.1)), age_slope=0.2),
    Theme("chest_pain", 0.07,
          (("R074", 0.5), ("R072", 0.14), ("R073", 0.14), ("R002", 0.08), ("R060", 0.08)),
          (("I10", 0.1), ("E785", 0.05)),
          ((("U194",), 0.1), (("U201",), 0.1), (("K634",), 0.05)), age_slope=0.2),
    Theme("abdominal_pain", 0.06,
          (("R104", 0.4), ("R101", 0.15), ("R103", 0.15), ("R100", 0.05), ("R11", 0.12),
           ("K590", 0.13)),
          (("N390", 0.05), ("K590", 0.08)),
          ((("U081",), 0.15), (("U091",), 0.05)), age_slope=0.0),
    Theme("respiratory_infection", 0.06,
          (("J22", 0.35), ("J069", 0.12), ("J209", 0.15), ("R05", 0.08), ("J90", 0.05),
           ("J159", 0.1), ("J988", 0.05), ("J40", 0.1)),
          (("R060", 0.1), ("E86", 0.05), ("N179", 0.04)),
          ((("U071",), 0.08),), age_slope=0.4),
    Theme("urinary", 0.06,
          (("N390", 0.4), ("R31", 0.18), ("R33", 0.1), ("N300", 0.1), ("N328", 0.06),
           ("R35", 0.06), ("N359", 0.05), ("R398", 0.05)),
          (("B962", 0.15), ("N179", 0.05)),
          ((("M459",), 0.3), (("M479",), 0.1), (("M458",), 0.05)), age_slope=0.4),
    Theme("fall_injury", 0.055,
          (("S0600", 0.2), ("S010", 0.2), ("S4200", 0.1), ("S8260", 0.1), ("S8220", 0.05),
           ("S3200", 0.05), ("S2230", 0.1), ("S9230", 0.05), ("T140", 0.1), ("S610", 0.05)),
          (("W199", 0.4), ("W0109", 0.2), ("X5999", 0.1)),
          ((("U051",), 0.2), (("W262",), 0.15), (("W251",), 0.1)), age_slope=0.3),
    Theme("collapse", 0.04,
          (("R55", 0.55), ("R42", 0.3), ("I951", 0.1), ("R296", 0.05)),
          (("I10", 0.15), ("E871", 0.05)),
          ((("U051",), 0.25), (("U192",), 0.1)), age_slope=0.5),
    Theme("skin_lesion", 0.07,
          (("D229", 0.2), ("L720", 0.15), ("D235", 0.12), ("L570", 0.12),
           ("D179", 0.15), ("L989", 0.08), ("L82", 0.13), ("D239", 0.05)),
          (("L570", 0.05),),
          ((("S069",), 0.25), (("S064",), 0.2), (("S065",), 0.15), (("S063",), 0.1),
           (("S068",), 0.1)), age_slope=0.2),
    Theme("gynaecology", 0.045,
          (("N950", 0.25), ("N840", 0.15), ("N832", 0.12), ("N920", 0.12), ("N939", 0.1),
           ("N870", 0.06), ("N893", 0.05), ("D27", 0.05), ("N851", 0.05), ("N768", 0.05)),
          (("Z302", 0.03),),
          ((("Q181",), 0.35), (("Q189",), 0.15), (("Q072",), 0.05), (("Q074",), 0.05),
           (("Q113",), 0.1)), age_slope=-0.3, sex="F"),
    Theme("breast", 0.025,
          (("N63", 0.45), ("N601", 0.15), ("D24", 0.15), ("Z123", 0.15), ("N61", 0.1)),
          (),
          ((("B321",), 0.4), (("U211",), 0.1)), age_slope=-0.2, sex="F"),
    Theme("musculoskeletal", 0.06,
          (("M751", 0.2), ("M2557", 0.1), ("M6534", 0.12), ("M7712", 0.08), ("M2343", 0.1),
           ("M1990", 0.12), ("M201", 0.1), ("M7581", 0.08), ("M7967", 0.1)),
          (),
          ((("W903",), 0.25), (("W822",), 0.1), (("T723",), 0.05), (("W151",), 0.05),
           (("W791",), 0.05), (("X382",), 0.1)), age_slope=0.1),
    Theme("ent", 0.025,
          (("J342", 0.2), ("J329", 0.2), ("H612", 0.15), ("H811", 0.15), ("J350", 0.05),
           ("H919", 0.1), ("R040", 0.15)),
          (),
          ((("E036",), 0.2), (("E133",), 0.1)), age_slope=0.0),
    Theme("eye", 0.025,
          (("H431", 0.15), ("H330", 0.15), ("H020", 0.15), ("H110", 0.1), ("H348", 0.15),
           ("H524", 0.1), ("H438", 0.2)),
          (),
          ((("C794",), 0.2), (("C542",), 0.1), (("C101",), 0.1)), age_slope=0.4),
    Theme("general_medical", 0.06,
          (("A099", 0.22), ("A419", 0.1), ("R509", 0.1), ("E86", 0.1), ("E871", 0.1),
           ("R53", 0.05), ("K529", 0.1), ("T783", 0.05), ("R634", 0.05), ("R69", 0.13)),
          (("N179", 0.1), ("E876", 0.08), ("E86", 0.08), ("D649", 0.05)),
          ((("X292",), 0.1), (("X355",), 0.1)), age_slope=0.5),
    Theme("cardiac_investigation", 0.03,
          (("R002", 0.3), ("I471", 0.15), ("R011", 0.15), ("I495", 0.1), ("R943", 0.15),
           ("I498", 0.15)),
          (("I10", 0.1),),
          ((("U201",), 0.35), (("U192",), 0.25), (("U194",), 0.1)), age_slope=0.3),
    Theme("dental_oral", 0.012,
          (("K011", 0.4), ("K047", 0.2), ("K051", 0.2), ("K082", 0.2)),
          (), ((("F091",), 0.5),), age_slope=-0.4),
    Theme("screening_followup", 0.03,
          (("Z121", 0.35), ("Z080", 0.15), ("Z098", 0.2), ("Z038", 0.15), ("Z048", 0.15)),
          (("Z860", 0.1),),
          ((("H229",), 0.2), (("U211",), 0.1), (("U212",), 0.1)), age_slope=0.1),
    Theme("vascular_access", 0.012,
          (("Z450", 0.3), ("T828", 0.3), ("Z452", 0.4)),
          (), ((("L912",), 0.3),), age_slope=0.3),
    Theme("poisoning_selfharm", 0.006,
          (("T391", 0.35), ("T424", 0.2), ("T430", 0.15), ("T510", 0.3)),
          (("X6099", 0.3), ("F101", 0.1)), (), age_slope=-0.6),
    Theme("hernia_other", 0.012,
          (("K439", 0.5), ("K429", 0.3), ("K410", 0.2)),
          (), ((("T251",), 0.3), (("T271",), 0.2)), age_slope=0.0),
    Theme("haemorrhoids", 0.015,
          (("K649", 0.6), ("K602", 0.2), ("K611", 0.1), ("K603", 0.1)),
          (), ((("H521",), 0.3), (("H513",), 0.2), (("H562",), 0.1)), age_slope=-0.1),
    Theme("cystoscopy", 0.02,
          (("R31", 0.5), ("N328", 0.2), ("Z098", 0.3)),
          (), ((("M459",), 0.5), (("M458",), 0.2)), age_slope=0.5),
)

# Further codes any admission may carry, each with a chance per admission (the "background"
# of hospital coding: complications, states, findings).
BACKGROUND: Weighted = (
    ("Z867", 0.0234), ("Z864", 0.0078), ("Z922", 0.0195), ("Z921", 0.0078), ("Z966", 0.0078),
    ("Z853", 0.0039), ("Z854", 0.0039), ("Z858", 0.0039), ("Z532", 0.0156),
    ("R69", 0.0156), ("R51", 0.0156), ("R54", 0.0117), ("R296", 0.0078), ("R739", 0.0078),
    ("E876", 0.0195), ("E871", 0.0156), ("D649", 0.0234), ("E559", 0.0156), ("E538", 0.0078),
    ("Y831", 0.0039), ("Y848", 0.0078), ("T814", 0.0059), ("Y95", 0.0039), ("B962", 0.0078),
    ("Z751", 0.0059), ("Z741", 0.0059), ("Z290", 0.0059), ("Z915", 0.0039),
)
TAIL_RATE = 0.6  # rare codes per admission, drawn from the long tail of coding 19
TAIL_PREFIXES = "ABDEGHIJKLMNRT"  # chapters the long tail draws from (no pregnancy, births)
# Codes only one sex can have, by ICD-10 prefix, kept out of the other sex's tail.
FEMALE_ONLY = ("C51", "C52", "C53", "C54", "C55", "C56", "C57", "C58", "D06", "D25", "D26",
               "D27", "D28", "N7", "N8", "N9", "O", "Z30", "Z31", "Z32", "Z33", "Z34", "Z35",
               "Z36", "Z37", "Z39")
MALE_ONLY = ("C60", "C61", "C62", "C63", "D29", "D40", "N40", "N41", "N42", "N43", "N44",
             "N45", "N46", "N47", "N48", "N49", "N50", "N51")


@dataclass(frozen=True)
class CancerSite:
    """A cancer registry site: codes, histology, behaviour, who gets it and how it ends."""

    name: str
    icd10: Weighted
    weight: float  # share of registry records (UK incidence in people aged 40-85, plus NMSC)
    histology: tuple[tuple[int, float], ...]  # coding 38
    behaviour: int = 3  # coding 39: 3 malignant primary, 2 in situ, 1 uncertain, 0 benign
    sex: str = ""
    slope: float = 0.045  # incidence rise per year of age
    min_age: float = 25.0
    risk: Mapping[str, float] = field(default_factory=dict)
    lethality: float = 0.0  # chance that a record leads to death from this cancer
    survival: float = 2.0  # mean years from diagnosis to death when fatal
    in_hes: float = 0.9  # chance the diagnosis shows in hospital records
    ops: tuple[Bundle, ...] = ()
    history: str = "Z858"  # personal-history code at later admissions


CANCER_SITES: tuple[CancerSite, ...] = (
    CancerSite("skin_nonmelanoma", (("C443", 0.4), ("C444", 0.12), ("C445", 0.15),
               ("C446", 0.1), ("C447", 0.08), ("C442", 0.07), ("C449", 0.08)), 0.27,
               ((8090, 0.72), (8091, 0.06), (8070, 0.17), (8071, 0.05)), slope=0.06,
               min_age=35, risk={"male": 0.4, "black": -3.0, "south_asian": -2.0},
               in_hes=0.45, ops=((("S069",), 0.4), (("S065",), 0.3), (("S051",), 0.1)),
               history="Z858"),
    CancerSite("breast", (("C509", 0.5), ("C504", 0.25), ("C505", 0.1), ("C508", 0.15)), 0.125,
               ((8500, 0.74), (8520, 0.12), (8522, 0.05), (8010, 0.04), (8480, 0.05)),
               sex="F", slope=0.021, min_age=30, risk={"bmi5": 0.1, "alcohol": 0.2},
               lethality=0.13, survival=5.0,
               ops=((("B282", "T862"), 0.45), (("B274", "T852"), 0.2), (("X654",), 0.2)),
               history="Z853"),
    CancerSite("prostate", (("C61", 1.0),), 0.095, ((8140, 0.93), (8550, 0.02), (8010, 0.05)),
               sex="M", slope=0.066, min_age=45, risk={"black": 0.8}, lethality=0.13,
               survival=5.0, ops=((("M611",), 0.15), (("X654",), 0.15)), history="Z854"),
    CancerSite("colorectal", (("C189", 0.15), ("C187", 0.2), ("C180", 0.15), ("C182", 0.1),
               ("C186", 0.05), ("C20", 0.25), ("C19", 0.1)), 0.07,
               ((8140, 0.82), (8480, 0.08), (8210, 0.04), (8263, 0.06)), slope=0.048,
               risk={"male": 0.3, "bmi5": 0.15, "alcohol": 0.2, "current": 0.2},
               lethality=0.455, survival=2.5,
               ops=((("H073",), 0.2), (("H093",), 0.1), (("H333",), 0.1), (("H103",), 0.1),
                    (("X352",), 0.15)), history="Z8502"),
    CancerSite("lung", (("C349", 0.4), ("C341", 0.4), ("C343", 0.2)), 0.04,
               ((8140, 0.35), (8070, 0.22), (8041, 0.12), (8046, 0.17), (8010, 0.08),
                (8012, 0.06)), slope=0.054, min_age=40,
               risk={"current": 2.6, "former": 1.3, "packs10": 0.2, "tdi": 0.2},
               lethality=0.95, survival=1.0, ops=((("E543",), 0.2), (("X352",), 0.3))),
    CancerSite("melanoma", (("C439", 0.2), ("C435", 0.3), ("C436", 0.15), ("C437", 0.25),
               ("C434", 0.1)), 0.045, ((8720, 0.45), (8743, 0.35), (8721, 0.1), (8742, 0.1)),
               slope=0.018, min_age=25, risk={"black": -3.0, "south_asian": -2.0},
               lethality=0.104, survival=3.0, ops=((("S069",), 0.5), (("S067",), 0.3))),
    CancerSite("cervix_in_situ", (("D069", 0.7), ("D061", 0.3)), 0.04, ((8077, 1.0),),
               behaviour=2, sex="F", slope=-0.036, min_age=22, in_hes=0.2,
               ops=((("Q031",), 0.5),)),
    CancerSite("breast_in_situ", (("D051", 0.85), ("D050", 0.1), ("D059", 0.05)), 0.02,
               ((8500, 0.8), (8520, 0.2)), behaviour=2, sex="F", slope=0.018, min_age=35,
               ops=((("B282",), 0.6),), history="Z860"),
    CancerSite("skin_in_situ", (("D043", 0.4), ("D045", 0.2), ("D046", 0.2), ("D049", 0.2)),
               0.025, ((8070, 0.8), (8077, 0.2)), behaviour=2, slope=0.066, min_age=40,
               risk={"black": -3.0}, in_hes=0.2, history="Z860"),
    CancerSite("bladder", (("C679", 1.0),), 0.018, ((8120, 0.6), (8130, 0.4)), slope=0.06,
               min_age=40, risk={"male": 1.0, "current": 1.0, "former": 0.5},
               lethality=0.325, survival=2.0, ops=((("M421", "M459"), 0.7),)),
    CancerSite("bladder_in_situ", (("D090", 1.0),), 0.008, ((8120, 0.5), (8130, 0.5)),
               behaviour=2, slope=0.06, min_age=40, risk={"male": 1.0, "current": 0.8},
               ops=((("M421",), 0.6),), history="Z860"),
    CancerSite("kidney", (("C64", 0.9), ("C65", 0.1)), 0.013, ((8312, 0.85), (8310, 0.15)),
               slope=0.042, min_age=35, risk={"male": 0.6, "bmi5": 0.3, "current": 0.4},
               lethality=0.455, survival=2.0, ops=((("M025",), 0.5),)),
    CancerSite("uterus", (("C541", 0.8), ("C549", 0.2)), 0.016, ((8380, 0.75), (8441, 0.1),
               (8140, 0.15)), sex="F", slope=0.042, min_age=40, risk={"bmi5": 0.6},
               lethality=0.195, survival=2.5, ops=((("Q074",), 0.7),), history="Z854"),
    CancerSite("ovary", (("C56", 1.0),), 0.01, ((8441, 0.5), (8460, 0.2), (8380, 0.15),
               (8010, 0.15)), sex="F", slope=0.03, min_age=35, lethality=0.715, survival=2.5,
               ops=((("Q072",), 0.5), (("X352",), 0.3)), history="Z854"),
    CancerSite("cervix", (("C539", 0.8), ("C530", 0.2)), 0.005, ((8070, 0.75), (8140, 0.25)),
               sex="F", slope=-0.012, min_age=25, lethality=0.39, survival=2.0,
               ops=((("Q072",), 0.4),), history="Z854"),
    CancerSite("lymphoma", (("C859", 0.3), ("C833", 0.3), ("C829", 0.25), ("C851", 0.15)),
               0.016, ((9680, 0.35), (9690, 0.25), (9591, 0.25), (9699, 0.15)), slope=0.036,
               lethality=0.39, survival=2.5, ops=((("X352",), 0.5),)),
    CancerSite("myeloma", (("C900", 1.0),), 0.006, ((9732, 1.0),), slope=0.054, min_age=40,
               risk={"black": 0.8}, lethality=0.78, survival=3.0, ops=((("X352",), 0.5),)),
    CancerSite("leukaemia", (("C911", 0.55), ("C920", 0.3), ("C921", 0.15)), 0.01,
               ((9823, 0.55), (9861, 0.3), (9863, 0.15)), slope=0.042, lethality=0.52,
               survival=2.0, ops=((("X352",), 0.4),)),
    CancerSite("pancreas", (("C259", 0.6), ("C250", 0.4)), 0.009, ((8140, 0.7), (8500, 0.2),
               (8010, 0.1)), slope=0.054, min_age=40, risk={"current": 0.7, "diabetes": 0.6,
               "bmi5": 0.2}, lethality=0.95, survival=0.6, in_hes=0.95),
    CancerSite("stomach", (("C169", 0.7), ("C160", 0.3)), 0.006, ((8140, 0.6), (8144, 0.4)),
               slope=0.054, min_age=40, risk={"male": 0.7, "current": 0.5}, lethality=0.91,
               survival=1.2, ops=((("G451",), 0.6),)),
    CancerSite("oesophagus", (("C159", 0.5), ("C155", 0.5)), 0.009, ((8140, 0.65),
               (8070, 0.35)), slope=0.048, min_age=40,
               risk={"male": 1.0, "current": 0.8, "alcohol": 0.5, "bmi5": 0.3},
               lethality=0.95, survival=1.0, ops=((("G451",), 0.7),)),
    CancerSite("head_neck", (("C099", 0.3), ("C029", 0.2), ("C109", 0.2), ("C329", 0.3)),
               0.01, ((8070, 0.85), (8071, 0.15)), slope=0.03, min_age=35,
               risk={"male": 0.9, "current": 1.0, "alcohol": 0.8}, lethality=0.455,
               survival=2.0, ops=((("X654",), 0.4),)),
    CancerSite("thyroid", (("C73", 1.0),), 0.005, ((8260, 0.7), (8050, 0.3)), sex="",
               slope=0.0, min_age=25, risk={"female": 1.0}, lethality=0.065, survival=5.0),
    CancerSite("testis", (("C629", 1.0),), 0.003, ((9061, 0.6), (8010, 0.4)), sex="M",
               slope=-0.03, min_age=18, lethality=0.039, survival=3.0),
    CancerSite("brain", (("C719", 0.8), ("C717", 0.2)), 0.004, ((9440, 0.7), (8000, 0.3)),
               slope=0.024, lethality=0.95, survival=1.0, ops=((("U052",), 0.6),)),
    CancerSite("liver", (("C220", 1.0),), 0.004, ((8170, 0.8), (8160, 0.2)), slope=0.048,
               min_age=40, risk={"male": 1.0, "alcohol": 1.0, "diabetes": 0.6},
               lethality=0.95, survival=0.9),
    CancerSite("unknown_primary", (("C809", 1.0),), 0.004, ((8000, 0.5), (8010, 0.5)),
               slope=0.06, min_age=45, lethality=0.95, survival=0.5),
    CancerSite("myeloproliferative", (("D45", 0.4), ("D471", 0.2), ("D473", 0.2),
               ("D472", 0.2)), 0.01, ((9950, 0.4), (9962, 0.3), (9975, 0.15), (9989, 0.15)),
               behaviour=1, slope=0.048, min_age=40, lethality=0.13, survival=4.0,
               history="Z860"),
    CancerSite("uncertain_other", (("D374", 0.3), ("D371", 0.2), ("D414", 0.3),
               ("D376", 0.2)), 0.006, ((8000, 0.6), (8240, 0.4)), behaviour=1, slope=0.036,
               min_age=35, history="Z860"),
    CancerSite("meningioma", (("D329", 1.0),), 0.004, ((9530, 1.0),), behaviour=0,
               slope=0.024, min_age=30, risk={"female": 0.9}, history="Z860"),
)
CANCER_SECONDARIES: Weighted = (("C787", 0.35), ("C795", 0.3), ("C780", 0.2), ("C793", 0.15))


@dataclass(frozen=True)
class DeathCause:
    """A non-cancer underlying cause of death, more likely in people with a condition."""

    name: str
    icd10: Weighted
    weight: float  # share of non-cancer deaths in people without the condition
    condition: str = ""  # condition name (see CONDITIONS) that raises it
    boost: float = 1.0  # weight multiplier when the person has that condition


DEATH_CAUSES: tuple[DeathCause, ...] = (
    DeathCause("ihd", (("I251", 0.55), ("I219", 0.35), ("I259", 0.1)), 0.10, "ihd", 14.0),
    DeathCause("mi", (("I219", 0.8), ("I214", 0.2)), 0.03, "mi", 12.0),
    DeathCause("stroke", (("I64", 0.5), ("I639", 0.3), ("I619", 0.2)), 0.04, "stroke", 12.0),
    DeathCause("heart_failure", (("I509", 0.7), ("I500", 0.3)), 0.01, "heart_failure", 15.0),
    DeathCause("af", (("I489", 1.0),), 0.005, "af", 6.0),
    DeathCause("copd", (("J449", 0.8), ("J440", 0.2)), 0.03, "copd", 16.0),
    DeathCause("pneumonia", (("J189", 1.0),), 0.03, "pneumonia", 4.0),
    DeathCause("dementia", (("F03", 0.5), ("G309", 0.35), ("F019", 0.15)), 0.02, "dementia",
               30.0),
    DeathCause("parkinsons", (("G20", 1.0),), 0.003, "parkinsons", 40.0),
    DeathCause("diabetes", (("E119", 0.8), ("E149", 0.2)), 0.01, "diabetes", 3.0),
    DeathCause("ckd", (("N189", 0.6), ("N185", 0.4)), 0.005, "ckd", 6.0),
    DeathCause("liver", (("K703", 0.5), ("K746", 0.5)), 0.02, "liver", 20.0),
    DeathCause("alcohol", (("F102", 1.0),), 0.005, "alcohol", 10.0),
    DeathCause("aaa", (("I713", 1.0),), 0.005, "aaa", 12.0),
    DeathCause("pe", (("I269", 1.0),), 0.008, "vte", 5.0),
    DeathCause("sepsis", (("A419", 1.0),), 0.02),
    DeathCause("motor_neurone", (("G122", 1.0),), 0.012),
    DeathCause("pulmonary_fibrosis", (("J841", 1.0),), 0.012),
    DeathCause("gi_bleed", (("K922", 0.5), ("K264", 0.5)), 0.008),
    DeathCause("falls", (("W199", 0.6), ("W0109", 0.4)), 0.01),
    DeathCause("suicide", (("X709", 1.0),), 0.008),
    DeathCause("accident", (("V892", 0.5), ("X5999", 0.5)), 0.008),
    DeathCause("cardiac_arrest", (("I469", 1.0),), 0.01),
    DeathCause("valve", (("I350", 1.0),), 0.006, "valve", 6.0),
)
COVID_DEATH = "U071"  # UK Biobank deaths from March 2020 include COVID-19
COVID_START = "2020-03-01"
COVID_DEATH_SHARE = 0.1  # of non-cancer deaths after COVID_START


# --- self-reported illness (field 20002, coding 6) ------------------------------------------

# (code, baseline state, chance of reporting it when the state is present)
SELF_REPORT_LINKED: tuple[tuple[int, str, float], ...] = (
    (1065, "hypertension", 0.92),
    (1072, "hypertension", 0.02),
    (1220, "diabetes_t2", 0.8),
    (1223, "diabetes_t2", 0.14),
    (1222, "type1", 0.8),
    (1220, "type1", 0.2),
    (1075, "mi", 0.9),
    (1074, "angina", 0.85),
    (1081, "stroke", 0.75),
    (1583, "stroke", 0.1),
    (1471, "af", 0.8),
    (1111, "asthma", 0.95),
    (1112, "copd", 0.45),
    (1113, "copd", 0.4),
    (1473, "statin", 0.55),
    (1226, "hypothyroid", 0.95),
    (1286, "depression", 0.9),
)
# (code, share of participants, sex, log-odds per 10 years of age)
SELF_REPORT_OTHER: tuple[tuple[int, float, str, float], ...] = (
    (1473, 0.025, "", 0.3), (1465, 0.084, "", 0.6), (1387, 0.061, "", -0.3),
    (1154, 0.031, "F", -0.2), (1138, 0.047, "", 0.2), (1452, 0.035, "", -0.2),
    (1453, 0.024, "", 0.0), (1474, 0.02, "", 0.4), (1082, 0.007, "", 0.7),
    (1078, 0.008, "", 0.5), (1094, 0.017, "", 0.4), (1093, 0.006, "", 0.4),
    (1309, 0.019, "F", 0.9), (1466, 0.016, "M", 0.4), (1464, 0.012, "", 0.4),
    (1534, 0.019, "", 0.0), (1311, 0.015, "", 0.4), (1476, 0.014, "", 0.1),
    (1478, 0.012, "", 0.3), (1265, 0.027, "F", -0.4), (1287, 0.013, "", -0.3),
    (1262, 0.002, "", 1.0), (1264, 0.008, "", 0.0), (1261, 0.004, "F", -0.1),
    (1278, 0.016, "", 1.2), (1277, 0.009, "", 0.9), (1458, 0.015, "", 0.7),
    (1460, 0.006, "", 0.5), (1462, 0.003, "", -0.2), (1463, 0.005, "", 0.0),
    (1162, 0.015, "F", 0.3), (1197, 0.018, "M", 0.0), (1207, 0.01, "M", 0.7),
    (1396, 0.03, "M", 1.0), (1351, 0.033, "F", -0.2), (1353, 0.009, "F", 0.4),
    (1402, 0.011, "F", -0.5), (1541, 0.013, "", 0.0), (1544, 0.004, "M", 0.6),
    (1494, 0.011, "", 0.2), (1505, 0.007, "", 0.0), (1513, 0.017, "M", 0.4),
    (1374, 0.01, "", -0.2), (1386, 0.006, "", 0.0), (1330, 0.006, "F", -0.4),
    (1446, 0.005, "F", 0.0), (1377, 0.004, "", 1.3), (1225, 0.008, "F", 0.0),
    (1224, 0.003, "F", 0.0), (1522, 0.003, "F", 0.0), (1408, 0.002, "M", 0.0),
    (1289, 0.001, "", -0.3), (1291, 0.002, "", -0.3), (1123, 0.004, "M", 0.3),
    (1573, 0.004, "", 0.4), (1598, 0.004, "", -0.5), (1502, 0.006, "", -0.3),
    (1514, 0.004, "F", 0.0), (1196, 0.003, "F", 0.0), (1398, 0.01, "", 0.3),
    (1637, 0.005, "F", 0.5), (1648, 0.001, "", 1.2), (1492, 0.002, "M", 1.0),
    (1415, 0.005, "", 0.3), (1416, 0.004, "", 0.0), (1536, 0.003, "", 0.8),
    (1616, 0.002, "", 0.0), (1665, 0.01, "F", -0.5), (1531, 0.002, "F", -0.5),
    (1456, 0.005, "F", 0.0), (1142, 0.005, "", 0.4), (1400, 0.004, "", 0.5),
    (1457, 0.004, "M", 0.5), (1121, 0.001, "", 1.0), (1114, 0.002, "", 0.5),
)
SELF_REPORT_TAIL_RATE = 0.12  # rarer self-reported illnesses per participant

# Procedures any admission may carry (imaging, approach and infusion codes), with chances.
OPS_BACKGROUND: Weighted = (
    ("Y981", 0.14), ("Y982", 0.05), ("Y532", 0.12), ("Y534", 0.06), ("Y533", 0.03),
    ("U051", 0.07), ("U071", 0.06), ("U081", 0.06), ("U091", 0.03), ("U054", 0.02),
    ("U212", 0.05), ("U211", 0.06), ("U052", 0.03), ("U055", 0.03), ("U123", 0.03),
    ("U201", 0.05), ("U192", 0.04), ("X292", 0.05), ("X355", 0.05), ("X332", 0.04),
    ("M479", 0.04), ("X481", 0.02), ("U549", 0.02), ("X403", 0.005), ("E851", 0.005),
)
OPS_TAIL_RATE = 0.6
OPS_TAIL_PREFIXES = "ABCDEFGHJKLMSTUVWX"  # no obstetrics (R), no subsidiary Y/Z chapters
OPS_FEMALE_ONLY = ("P", "Q", "R")
OPS_MALE_ONLY = ("N", "M61", "M62", "M64", "M65", "M66", "M67", "M68", "M70", "M71")
# fmt: on
