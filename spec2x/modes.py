"""The stage-2 step table as data: which steps run for an exposure, in which order, and why the others don't.

The rows follow ``calwebb_spec2.rst`` and what jwst 3.0.0's ``Spec2Pipeline`` actually runs with its
default parameters (where the two differ, jwst wins and the row's ``note`` says so).  A mode is chosen
from header keywords only (EXP_TYPE, TSOVISIT/NINTS, OPMODE, LAMP), never by code paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spec2x.errors import Spec2xError

# Every step of Spec2Pipeline in jwst's execution order (resample_spec/cube_build/extract_1d last;
# NIRISS SOSS runs photom after extract_1d, which its row expresses by listing photom there).
ALL_STEPS = (
    "assign_wcs", "badpix_selfcal", "msa_flagging", "clean_flicker_noise", "imprint_subtract",
    "bkg_subtract", "extract_2d", "srctype", "targ_centroid", "master_background_mos", "wavecorr",
    "straylight", "flat_field", "fringe", "pathloss", "barshadow", "wfss_contam", "photom",
    "residual_fringe", "adaptive_trace_model", "pixel_replace", "resample_spec", "cube_build",
    "extract_1d",
)

# Steps jwst 3.0.0 skips unless asked (skip=True in their parameter spec).
OFF_BY_DEFAULT = {"badpix_selfcal", "clean_flicker_noise", "targ_centroid", "residual_fringe",
                  "adaptive_trace_model", "pixel_replace"}

# Steps that need associated exposures (an ASN listing background or imprint members).
NEEDS_MEMBERS = {"bkg_subtract": "background", "imprint_subtract": "imprint"}

# Reference types each jwst step asks for (jwst records every one in R_* keywords, N/A when unused).
STEP_REFTYPES = {
    "assign_wcs": ("distortion", "filteroffset", "specwcs", "regions", "wavelengthrange", "camera", "chromcorr",
                   "collimator", "disperser", "fore", "fpa", "msa", "ote", "ifupost", "ifufore", "ifuslicer"),
    "flat_field": ("flat", "fflat", "sflat", "dflat"),
    "extract_2d": ("wavelengthrange",),
    "wavecorr": ("wavecorr",),
    "photom": ("photom", "area"),
    "extract_1d": ("extract1d", "apcorr", "psf"),
    "bkg_subtract": ("bkg", "wavelengthrange"),
    "pathloss": ("pathloss",),
}

# The steps jwst's Spec2Pipeline calls (and so records as COMPLETE or SKIPPED) on its common path,
# before the calibrated product is saved, and after it, on the way to the spectra.
COMMON_PATH = ("assign_wcs", "badpix_selfcal", "msa_flagging", "clean_flicker_noise", "imprint_subtract",
               "bkg_subtract", "srctype", "targ_centroid", "straylight", "flat_field", "fringe", "pathloss",
               "barshadow", "photom", "residual_fringe")
SPECTRA_PATH = ("adaptive_trace_model", "pixel_replace", "extract_1d")

# jwst's _process_nirspec_slits: the steps it calls (COMPLETE or SKIPPED) before the calibrated product.
NIRSPEC_SLIT_PATH = ("assign_wcs", "badpix_selfcal", "msa_flagging", "clean_flicker_noise", "imprint_subtract",
                     "bkg_subtract", "extract_2d", "srctype", "master_background_mos", "wavecorr", "flat_field",
                     "pathloss", "barshadow", "photom")
# The optical-model references of a NIRSpec slit WCS.
NIRSPEC_SLIT_WCS = ("camera", "collimator", "disperser", "fore", "fpa", "msa", "ote", "wavelengthrange")

TSO_EXP_TYPES = {"MIR_LRS-SLITLESS", "NRC_TSGRISM", "NRS_BRIGHTOBJ", "NIS_SOSS"}


@dataclass(frozen=True)
class Mode:
    """One row of the table: the keywords that select it and its ordered steps."""

    name: str
    exp_types: tuple
    steps: tuple
    products: tuple
    when: dict = field(default_factory=dict)
    note: str = ""
    cal_model: str = "ImageModel"
    x1d_model: str = "MultiSpecModel"
    implemented: dict = field(default_factory=dict)
    jwst_path: tuple = COMMON_PATH
    requires: dict = field(default_factory=dict)   # keyword -> the values the mode supports
    reftypes: dict = field(default_factory=dict)   # step -> reftypes jwst records, where not STEP_REFTYPES
    reference_background: bool = False             # bkg_subtract uses a BKG reference, not ASN members
    optional_steps: tuple = ()                     # steps that jwst skips when their reference is absent
    step_requires: dict = field(default_factory=dict)  # step -> {keyword: values}: jwst skips it otherwise

    def unsupported(self, keywords: dict) -> str | None:
        """The first keyword whose value this mode does not support, as a message; None if all are fine
        (an absent keyword is left to the step that needs it)."""
        for key, allowed in self.requires.items():
            value = str(keywords.get(key) or "").strip().upper()
            if value and value not in allowed:
                return f"{key}={value} is not supported for {self.name} (supported: {', '.join(allowed)})"
        return None

    def step_refused(self, step: str, keywords: dict) -> str | None:
        """Why jwst skips ``step`` for these keywords (a value its ``step_requires`` does not list), or None
        (an absent keyword is left to the step)."""
        for key, allowed in self.step_requires.get(step, {}).items():
            value = str(keywords.get(key) or "").strip().upper()
            if value and value not in allowed:
                return f"jwst 3.0.0 skips it for {key}={value} (it needs {key} in {', '.join(allowed)})"
        return None

    def spectra_path(self) -> tuple:
        """Steps jwst records in the spectral products: the common path, then those after extraction."""
        after = self.steps[self.steps.index("extract_1d") + 1:] if "extract_1d" in self.steps else ()
        return self.jwst_path + SPECTRA_PATH + after

    def recorded_reftypes(self, step: str) -> tuple:
        """The reference types jwst records (R_xxxxx) for ``step`` in this mode."""
        return self.reftypes.get(step, STEP_REFTYPES.get(step, ()))

    def matches(self, keywords: dict) -> bool:
        if str(keywords.get("EXP_TYPE", "")).upper() not in self.exp_types:
            return False
        for key, allowed in self.when.items():
            value = str(keywords.get(key, "")).upper()
            if not any(value.startswith(a) for a in allowed):
                return False
        return True


_GRISM_NOTE = "flat_field runs before extract_2d for grism modes (spec footnote 1)"
# The steps jwst's grism path (_process_grism) records S_xxxxx keywords for in the calibrated product.
GRISM_PATH = ("assign_wcs", "badpix_selfcal", "msa_flagging", "clean_flicker_noise", "imprint_subtract",
              "bkg_subtract", "flat_field", "extract_2d", "srctype", "straylight", "fringe", "pathloss",
              "barshadow", "wfss_contam", "photom")
# Subarrays jwst 3.0.0 extracts SOSS spectra for (jwst.lib.exposure_types.NIS_SOSS_SUPPORTED_SUBARRAYS);
# it extracts through the CLEAR filter only.  Otherwise extract_1d returns SKIPPED, photom is not run and
# no x1dints is written.
SOSS_EXTRACTION = {"FILTER": ("CLEAR",), "SUBARRAY": ("SUBSTRIP256", "SUB17STRIPE_SOSS", "SUB60STRIPE_SOSS",
                                                      "SUB204STRIPE_SOSS", "SUB680STRIPE_SOSS", "SUBSTRIP96")}
# Long-wave filters NIRCam's grism time series uses with GRISMR (jwst 3.0.0 has no DHS/short-wave support here).
NIRCAM_GRISM_FILTERS = ("F250M", "F277W", "F300M", "F322W2", "F335M", "F356W", "F360M", "F410M", "F430M",
                        "F444W", "F460M", "F480M")
MODES = (
    Mode("MIRI LRS slitless (TSO)", ("MIR_LRS-SLITLESS",),
         ("assign_wcs", "srctype", "flat_field", "photom", "extract_1d"), ("calints", "x1dints"),
         note="jwst converts the cube to a SlitModel before srctype (calints is a SlitModel)",
         cal_model="SlitModel", x1d_model="TSOMultiSpecModel",
         implemented={"assign_wcs": (("distortion", "specwcs"), ()), "srctype": ((), ()),
                      "flat_field": (("flat",), ()), "photom": (("photom",), ("area",)),
                      "extract_1d": ((), ("extract1d", "apcorr", "psf"))}),
    Mode("MIRI LRS fixed slit", ("MIR_LRS-FIXEDSLIT",),
         ("assign_wcs", "bkg_subtract", "srctype", "flat_field", "pathloss", "photom", "resample_spec",
          "extract_1d"), ("cal", "s2d", "x1d")),
    Mode("MIRI MRS", ("MIR_MRS",),
         ("assign_wcs", "bkg_subtract", "srctype", "straylight", "flat_field", "fringe", "photom",
          "residual_fringe", "cube_build", "extract_1d"), ("cal", "s3d", "x1d")),
    Mode("NIRSpec fixed slit", ("NRS_FIXEDSLIT",),
         ("assign_wcs", "bkg_subtract", "extract_2d", "srctype", "wavecorr", "flat_field", "pathloss",
          "photom", "resample_spec", "extract_1d"), ("cal", "s2d", "x1d")),
    Mode("NIRSpec MOS", ("NRS_MSASPEC",),
         ("assign_wcs", "msa_flagging", "imprint_subtract", "bkg_subtract", "extract_2d", "srctype",
          "master_background_mos", "wavecorr", "flat_field", "pathloss", "barshadow", "photom",
          "resample_spec", "extract_1d"), ("cal", "s2d", "x1d")),
    Mode("NIRSpec IFU", ("NRS_IFU",),
         ("assign_wcs", "msa_flagging", "imprint_subtract", "bkg_subtract", "srctype", "flat_field",
          "pathloss", "photom", "cube_build", "extract_1d"), ("cal", "s3d", "x1d")),
    Mode("NIRSpec BOTS (TSO)", ("NRS_BRIGHTOBJ",),
         ("assign_wcs", "extract_2d", "srctype", "wavecorr", "flat_field", "photom", "extract_1d"),
         ("calints", "x1dints"), note="S1600A1; PRISM/CLEAR and the G140H/G235H/G395H (and M) gratings, NRS1/NRS2",
         cal_model="SlitModel", x1d_model="TSOMultiSpecModel",
         implemented={"assign_wcs": (NIRSPEC_SLIT_WCS, ()), "extract_2d": ((), ("wavelengthrange",)), "srctype": ((), ()),
                      "wavecorr": ((), ("wavecorr",)), "flat_field": ((), ("fflat", "sflat", "dflat")),
                      "photom": (("photom",), ("area",)), "extract_1d": ((), ("extract1d", "apcorr", "psf"))},
         jwst_path=NIRSPEC_SLIT_PATH),
    Mode("NIRISS SOSS (TSO)", ("NIS_SOSS",),
         ("assign_wcs", "bkg_subtract", "srctype", "flat_field", "pathloss", "extract_1d", "photom"),
         ("calints", "x1dints"), note="jwst calibrates SOSS spectra after extraction: photom follows extract_1d; "
                                      "bkg_subtract and pathloss need their (optional) references",
         cal_model="CubeModel", x1d_model="TSOMultiSpecModel",
         implemented={"assign_wcs": (("specwcs",), ()), "bkg_subtract": (("bkg",), ("wavelengthrange",)),
                      "srctype": ((), ()), "flat_field": (("flat",), ()), "pathloss": (("pathloss",), ()),
                      "extract_1d": (("pastasoss", "specprofile", "speckernel"), ()),
                      "photom": (("photom",), ("area",))},
         reftypes={"extract_1d": ("pastasoss", "specprofile", "speckernel")}, reference_background=True,
         optional_steps=("bkg_subtract", "pathloss"),
         step_requires={"extract_1d": SOSS_EXTRACTION, "photom": SOSS_EXTRACTION},
         jwst_path=tuple(s for s in COMMON_PATH if s not in ("photom", "residual_fringe"))),
    Mode("NIRISS WFSS", ("NIS_WFSS",),
         ("assign_wcs", "bkg_subtract", "flat_field", "extract_2d", "srctype", "wfss_contam", "photom",
          "extract_1d"), ("cal", "x1d"), note=_GRISM_NOTE),
    Mode("NIRCam WFSS", ("NRC_WFSS",),
         ("assign_wcs", "bkg_subtract", "flat_field", "extract_2d", "srctype", "wfss_contam", "photom",
          "extract_1d"), ("cal", "x1d"), note=_GRISM_NOTE),
    Mode("NIRCam grism TSO", ("NRC_TSGRISM",),
         ("assign_wcs", "flat_field", "extract_2d", "srctype", "photom", "extract_1d"), ("calints", "x1dints"),
         note=_GRISM_NOTE + "; jwst 3.0.0 runs srctype here although the spec's footnote says it does not",
         cal_model="SlitModel", x1d_model="TSOMultiSpecModel",
         requires={"PUPIL": ("GRISMR",), "FILTER": NIRCAM_GRISM_FILTERS},
         implemented={"assign_wcs": (("distortion", "specwcs"), ("filteroffset", "wavelengthrange")),
                      "flat_field": (("flat",), ()), "extract_2d": (("wavelengthrange",), ()),
                      "srctype": ((), ()), "photom": (("photom",), ("area",)),
                      "extract_1d": ((), ("extract1d", "apcorr", "psf"))},
         jwst_path=GRISM_PATH),
    # NIRSpec lamp exposures: OPMODE picks the optics, LAMP the line or continuum lamp.
    Mode("NIRSpec lamp, line, FS/BOTS", ("NRS_LAMP",),
         ("assign_wcs", "extract_2d", "wavecorr", "flat_field", "resample_spec", "extract_1d"),
         ("cal", "s2d", "x1d"), when={"OPMODE": ("FIXEDSLIT", "BRIGHTOBJ"), "LAMP": ("LINE", "REF")}),
    Mode("NIRSpec lamp, line, MOS", ("NRS_LAMP",),
         ("assign_wcs", "msa_flagging", "extract_2d", "wavecorr", "flat_field", "resample_spec", "extract_1d"),
         ("cal", "s2d", "x1d"), when={"OPMODE": ("MSASPEC",), "LAMP": ("LINE", "REF")}),
    Mode("NIRSpec lamp, line, IFU", ("NRS_LAMP",),
         ("assign_wcs", "msa_flagging", "wavecorr", "flat_field", "cube_build", "extract_1d"),
         ("cal", "s3d", "x1d"), when={"OPMODE": ("IFU",), "LAMP": ("LINE", "REF")}),
    Mode("NIRSpec lamp, flat, FS/BOTS", ("NRS_LAMP",),
         ("assign_wcs", "extract_2d", "wavecorr", "flat_field"), ("cal",),
         when={"OPMODE": ("FIXEDSLIT", "BRIGHTOBJ"), "LAMP": ("FLAT",)}, note="D-flat only"),
    Mode("NIRSpec lamp, flat, MOS", ("NRS_LAMP",),
         ("assign_wcs", "msa_flagging", "extract_2d", "wavecorr", "flat_field"), ("cal",),
         when={"OPMODE": ("MSASPEC",), "LAMP": ("FLAT",)}, note="D-flat only"),
    Mode("NIRSpec lamp, flat, IFU", ("NRS_LAMP",),
         ("assign_wcs", "imprint_subtract", "msa_flagging", "wavecorr", "flat_field"), ("cal",),
         when={"OPMODE": ("IFU",), "LAMP": ("FLAT",)}, note="D-flat only"),
    Mode("NIRSpec autowave, FS/MOS", ("NRS_AUTOWAVE",),
         ("assign_wcs", "msa_flagging", "extract_2d", "wavecorr", "flat_field", "resample_spec", "extract_1d"),
         ("cal", "s2d", "x1d"), when={"OPMODE": ("FIXEDSLIT", "BRIGHTOBJ", "MSASPEC")}),
    Mode("NIRSpec autowave, IFU", ("NRS_AUTOWAVE",),
         ("assign_wcs", "msa_flagging", "wavecorr", "flat_field", "cube_build", "extract_1d"),
         ("cal", "s3d", "x1d"), when={"OPMODE": ("IFU",)}),
    Mode("NIRSpec autoflat, MOS", ("NRS_AUTOFLAT",),
         ("assign_wcs", "msa_flagging", "extract_2d", "wavecorr"), ("cal",), when={"OPMODE": ("MSASPEC",)}),
)


@dataclass(frozen=True)
class Plan:
    """Ordered steps to run for one exposure and, for every other stage-2 step, why it does not run."""

    mode: Mode
    tso: bool
    run: tuple
    skipped: dict

    def describe(self) -> str:
        lines = [f"mode: {self.mode.name}{' (time series)' if self.tso else ''}"]
        lines += [f"  {i + 1:2d}. {step}{'' if step in self.mode.implemented else '  (not implemented yet)'}"
                  for i, step in enumerate(self.run)]
        lines.append("skipped:")
        lines += [f"      {step}: {why}" for step, why in self.skipped.items()]
        if self.mode.note:
            lines.append(f"note: {self.mode.note}")
        return "\n".join(lines)


def is_tso(keywords: dict) -> bool:
    """jwst's rule: TSOVISIT=T, or a TSO exposure type with more than one integration."""
    tsovisit = keywords.get("TSOVISIT")
    if tsovisit in (True, "T", "True", "TRUE"):
        return True
    return str(keywords.get("EXP_TYPE", "")).upper() in TSO_EXP_TYPES and int(keywords.get("NINTS", 1) or 1) > 1


def find_mode(keywords: dict, source: str = "exposure") -> Mode:
    """The table row for these keywords; an unsupported EXP_TYPE is a clear error."""
    for mode in MODES:
        if mode.matches(keywords):
            return mode
    exp_type = keywords.get("EXP_TYPE")
    extra = ""
    if str(exp_type).upper().startswith("NRS_") and keywords.get("OPMODE"):
        extra = f" with OPMODE={keywords.get('OPMODE')} LAMP={keywords.get('LAMP')}"
    raise Spec2xError(f"{source}: EXP_TYPE={exp_type}{extra} is not a stage-2 spectroscopic mode")


def plan(keywords: dict, members: dict | None = None, skip: tuple = (), source: str = "exposure") -> Plan:
    """Steps to run for an exposure with these header keywords.

    ``members`` maps ASN member types ("background", "imprint") to their paths; ``skip`` holds steps
    the user turned off.
    """
    mode = find_mode(keywords, source)
    problem = mode.unsupported(keywords)
    if problem:
        raise Spec2xError(f"{source}: {problem}")
    members = members or {}
    unknown = set(skip) - set(ALL_STEPS)
    if unknown:
        raise Spec2xError(f"unknown step(s) {', '.join(sorted(unknown))}; valid steps: {', '.join(ALL_STEPS)}")
    run, skipped = [], {}
    for step in ALL_STEPS:
        if step in OFF_BY_DEFAULT:
            skipped[step] = "off by default in jwst (skip=True)"
        elif step not in mode.steps:
            skipped[step] = f"not used for {mode.name}"
        elif step in skip:
            skipped[step] = "skipped by the user"
        elif mode.step_refused(step, keywords):
            skipped[step] = mode.step_refused(step, keywords)
        elif step in NEEDS_MEMBERS and not members.get(NEEDS_MEMBERS[step]) and not (
                step == "bkg_subtract" and mode.reference_background):
            skipped[step] = f"no {NEEDS_MEMBERS[step]} members in the association"
        else:
            run.append(step)
    order = {s: i for i, s in enumerate(mode.steps)}
    return Plan(mode, is_tso(keywords), tuple(sorted(run, key=order.__getitem__)), skipped)
