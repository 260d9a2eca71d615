"""Pipeline steps, one module per step, named as jwst names them.

Every step module exposes

    REFTYPES: tuple[str, ...]          reference types the step asks for (jwst's lower-case names)
    def run(ds: xr.Dataset, refs: dict[str, str | None]) -> xr.Dataset

``refs`` maps each of ``REFTYPES`` to a checked path, or None when the user said N/A.  ``run`` is lazy:
it never computes the cube; anything that does not change between integrations (wavelength map,
flat, conversion factors) is built once as a small numpy array and broadcast.

The Dataset every step receives and returns:

* data variables over ``(integration, y, x)``, dask-backed: ``sci, err, var_poisson, var_rnoise``
  (float32), ``dq`` (uint32), and ``var_flat`` once flat_field has run;
* ``(y, x)`` coordinates added by steps: ``wavelength`` (assign_wcs, float64, NaN outside the
  bounding box), ``area`` (photom);
* ``integration`` coordinates: ``integration_number`` and the INT_TIMES columns;
* ``attrs["primary"]`` and ``attrs["sci"]``: FITS keywords of the PRIMARY and SCI headers, as plain
  dicts.  A step returns new dicts (never mutates) with its status keyword ``S_xxxxx``, its reference
  keywords ``R_xxxxx`` and what else jwst records, in the header where jwst writes them;
* ``attrs["wcs"]``: the gwcs object, once assign_wcs has run.
"""
