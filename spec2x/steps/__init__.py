"""Pipeline steps, one module per step, named as jwst names them.

Every step module exposes

    def prepare(ds, refs, **params)   # once per exposure: WCS, flat, conversion maps, extraction plan
    def apply(ds, prepared)           # lazy on dask, or eager on one chunk of integrations
    def run(ds, refs) = apply(ds, prepare(ds, refs))
    PARAMETERS = {name: jwst's default}   # only in steps that take parameters (``calibrate(params=)``)

``refs`` maps the reference types the mode table (``spec2x.modes``) lists for the step to a checked
path, or None when N/A.  The pipeline records S_xxxxx/R_xxxxx keywords; a step only sets its own
S_xxxxx to SKIPPED when it finds nothing to do.  ``run`` is lazy:
it never computes the cube; anything that does not change between integrations (wavelength map,
flat, conversion factors) is built once as a small numpy array and broadcast.

The Dataset every step receives and returns:

* data variables over ``(integration, y, x)``, dask-backed: ``sci, err, var_poisson, var_rnoise``
  (float32), ``dq`` (uint32), and ``var_flat`` once flat_field has run;
* ``(y, x)`` coordinates added by steps: ``wavelength`` (assign_wcs, float64, NaN outside the
  bounding box), ``area`` (photom);
* ``integration`` coordinates: ``integration_number`` and the INT_TIMES columns;
* ``attrs["primary"]``, ``attrs["sci"]`` (and ``attrs["err"]`` once set): FITS keywords of the PRIMARY,
  SCI and ERR headers, as plain dicts.  A step returns new dicts (never mutates) with what jwst
  records, in the header where jwst writes it;
* ``attrs["wcs"]``: the gwcs object, once assign_wcs has run.
"""
