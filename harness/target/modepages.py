"""The mode pages one logical unit keeps: current, changeable and default values.

Model: two pages, caching (08h) and control (0Ah). Changeable fields are WCE
(write-back cache: the block store stops making every write durable) and
D_SENSE (descriptor-format sense). Saved values are not supported (page control
3 and SP=1 are refused); a logical unit reset returns to the defaults. MODE
SELECT is all-or-nothing: every page is checked before any is applied.
"""

from __future__ import annotations

import dataclasses

from harness.scsi.mode import (
    ALL_PAGES,
    CachingPage,
    ControlPage,
    ModePage,
    ModePageCode,
    ModeParameters,
    PageControl,
    RawModePage,
)
from harness.scsi.sense import (
    Asc,
    SenseData,
    illegal_request,
    invalid_field_in_cdb,
    invalid_field_in_parameter_list,
)

_PAGE_ORDER = (ModePageCode.CACHING, ModePageCode.CONTROL)

CHANGEABLE: dict[int, ModePage] = {
    ModePageCode.CACHING: CachingPage(wce=True),
    ModePageCode.CONTROL: ControlPage(d_sense=True, gltsd=False, queue_algorithm_modifier=0),
}


class ModePages:
    """Current mode parameter values of one logical unit."""

    def __init__(self, *, write_back: bool = False, d_sense: bool = False) -> None:
        self.defaults: dict[int, ModePage] = {
            ModePageCode.CACHING: CachingPage(wce=write_back),
            ModePageCode.CONTROL: ControlPage(d_sense=d_sense),
        }
        self.current: dict[int, ModePage] = dict(self.defaults)

    @property
    def write_back(self) -> bool:
        page = self.current[ModePageCode.CACHING]
        return isinstance(page, CachingPage) and page.wce

    @property
    def d_sense(self) -> bool:
        page = self.current[ModePageCode.CONTROL]
        return isinstance(page, ControlPage) and page.d_sense

    def reset(self) -> None:
        self.current = dict(self.defaults)

    def sense(self, page_code: int, subpage: int,
              page_control: int) -> tuple[ModePage, ...] | SenseData:
        """The pages MODE SENSE returns, or the sense to fail it with."""
        if page_control == PageControl.SAVED:
            return illegal_request(Asc.SAVING_PARAMETERS_NOT_SUPPORTED)
        source = {PageControl.CURRENT: self.current, PageControl.CHANGEABLE: CHANGEABLE,
                  PageControl.DEFAULT: self.defaults}[PageControl(page_control)]
        if page_code == ALL_PAGES:
            if subpage not in (0x00, 0xFF):
                return invalid_field_in_cdb(3)
            return tuple(source[c] for c in _PAGE_ORDER)
        if page_code not in source:
            return invalid_field_in_cdb(2, 5)
        if subpage != 0:
            return invalid_field_in_cdb(3)
        return (source[page_code],)

    def select(self, params: ModeParameters, *, header_length: int,
               block_descriptor_length: int) -> SenseData | None:
        """Apply MODE SELECT pages; return the sense to fail with, or None when applied."""
        updates: dict[int, ModePage] = {}
        offset = header_length + block_descriptor_length
        for page in params.pages:
            here = offset
            offset += len(page.encode())
            if isinstance(page, RawModePage) or page.page_code not in self.current:
                return invalid_field_in_parameter_list(here, 5)
            if page.ps:
                return invalid_field_in_parameter_list(here, 7)
            current = self.current[page.page_code]
            mask = CHANGEABLE[page.page_code]
            for f in dataclasses.fields(page):  # type: ignore[arg-type]
                if f.name == "ps":
                    continue
                new, old = getattr(page, f.name), getattr(current, f.name)
                if new != old and not getattr(mask, f.name):
                    return invalid_field_in_parameter_list(here + 2)
            updates[page.page_code] = page
        self.current.update(updates)
        return None
