/* The station form (register and edit share it): name, district, address, coordinates (WGS-84,
 * as a phone's GPS gives them), contact, services, admitted groups. */
import { h, field } from "./dom.js";
import { tr } from "./i18n.js";

const list = (text) => text.split(/[,，、]\s*/).map((v) => v.trim()).filter(Boolean);

export function stationForm(station = {}, { districts = [], withId = false, districtEditable = true } = {}) {
  const inputs = {
    station_id: h("input", { name: "station_id", maxlength: "64", autocomplete: "off", spellcheck: "false", autocapitalize: "none" }),
    name: h("input", { name: "name", maxlength: "200", autocomplete: "off", value: station.name || "" }),
    district_id: h("select", { name: "district_id", disabled: !districtEditable },
      districts.map((d) => h("option", { value: d.district_id, selected: station.district_id === d.district_id }, `${d.name} (${d.district_id})`))),
    address: h("input", { name: "address", maxlength: "300", autocomplete: "off", value: station.address || "" }),
    latitude: h("input", { name: "latitude", inputmode: "decimal", autocomplete: "off", value: station.latitude ?? "" }),
    longitude: h("input", { name: "longitude", inputmode: "decimal", autocomplete: "off", value: station.longitude ?? "" }),
    contact_name: h("input", { name: "contact_name", maxlength: "100", autocomplete: "off", value: (station.contact || {}).name || "" }),
    contact_phone: h("input", { name: "contact_phone", type: "tel", maxlength: "32", autocomplete: "off", value: (station.contact || {}).phone || "" }),
    services: h("input", { name: "services", maxlength: "500", autocomplete: "off", value: (station.services || []).join(", ") }),
    allowed_groups: h("input", { name: "allowed_groups", maxlength: "500", autocomplete: "off", value: (station.allowed_groups || []).join(", "),
      placeholder: tr("station_form.groups_hint") }),
  };
  const element = h("div", { className: "form-grid" },
    withId ? field(tr("station_form.id"), inputs.station_id) : null,
    field(tr("station_form.name"), inputs.name),
    field(tr("station_form.district"), inputs.district_id),
    field(tr("station_form.address"), inputs.address),
    field(tr("station_form.latitude"), inputs.latitude),
    field(tr("station_form.longitude"), inputs.longitude),
    field(tr("station_form.contact_name"), inputs.contact_name),
    field(tr("station_form.contact_phone"), inputs.contact_phone),
    field(tr("station_form.services"), inputs.services),
    field(tr("station_form.groups"), inputs.allowed_groups));

  function values() {
    const number = (input) => {
      const text = input.value.trim();
      if (!text) return null;
      const value = Number(text);
      if (!Number.isFinite(value)) throw new Error(tr("station_form.bad_coordinates"));
      return value;
    };
    const out = {
      name: inputs.name.value.trim(),
      address: inputs.address.value.trim() || null,
      latitude: number(inputs.latitude),
      longitude: number(inputs.longitude),
      contact_name: inputs.contact_name.value.trim() || null,
      contact_phone: inputs.contact_phone.value.trim() || null,
      services: list(inputs.services.value),
      allowed_groups: list(inputs.allowed_groups.value),
    };
    if (districtEditable) out.district_id = inputs.district_id.value;
    if (withId) out.station_id = inputs.station_id.value.trim();
    if (!out.name) throw new Error(tr("station_form.name_required"));
    if ((out.latitude === null) !== (out.longitude === null)) throw new Error(tr("station_form.bad_coordinates"));
    return out;
  }
  return { element, values };
}
