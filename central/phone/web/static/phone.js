/* The worker's pages (zh-CN). Plain ES2017 for WeChat's built-in browser and any phone browser:
   no framework, no build step. The view comes from the path; every call goes to /api/m/ or
   /api/public/ on this same origin, with the CSRF header the server expects (see gate.py). */
"use strict";

var state = { csrf: null, me: null, station: null, passTimer: null, passTicker: null, code: null };

var KINDS = { courier: "快递员", rider: "外卖骑手", sanitation: "环卫工人", driver: "司机", other: "其他户外工作" };
var STATUS = { active: "正常", pending: "等待审核", suspended: "已暂停" };
var SERVICES = {
  water: "饮水", hot_water: "热水", microwave: "微波炉", charging: "充电", toilet: "卫生间",
  air_conditioning: "空调", heating: "暖气", medicine: "药箱", medicine_box: "药箱", rest: "休息座椅",
  wifi: "无线网络", first_aid: "急救包", umbrella: "雨伞", repair: "打气修车", reading: "书报", shower: "淋浴",
};
var EVENTS = { entry: "进门", exit: "出门", refused: "未能进门", ignored: "重复刷卡", lockout: "暂时锁定" };
var METHODS = { face: "刷脸", qr: "通行码", qr_face: "通行码+刷脸", remote: "手机开门", exit_button: "出门按钮" };
var REASONS = {
  member_pending: "您的注册正在等待工作人员审核。",
  member_suspended: "您的会员资格已暂停，请联系驿站工作人员。",
  not_yet_valid: "您的会员资格还没有生效。",
  member_expired: "您的会员有效期已过，请联系驿站工作人员。",
  station_out_of_service: "这个驿站暂停服务。",
  not_allowed_here: "这个驿站只对特定人员开放。",
  station_closed: "驿站现在不开放。",
  location_required: "这个驿站需要确认您就在门口：请允许使用位置后再试。",
  too_far: "您离驿站太远，请走到门口再开门。",
  cooldown: "刚刚开过门，请稍等几秒再试。",
  rate_limited: "操作太频繁，请稍后再试。",
  station_offline: "驿站暂时连不上网络，请用通行码开门：",
  no_answer: "驿站没有回应，请用通行码开门：",
  replayed: "这个请求已经处理过，请重新点“开门”。",
  csrf: "页面已过期，请刷新后再试。",
  phone_login_required: "请先登录。",
  phone_registered: "这个手机号已经注册过，请用验证码登录。",
  phone_unknown: "这个手机号还没有注册，请先在驿站门口扫码注册。",
  wrong_code: "验证码不对，请再看一下短信。",
  code_expired: "验证码已失效，请重新获取。",
  locked_out: "验证码错误次数太多，请一小时后再试。",
  sms_failed: "短信发送失败，请过一分钟再试。",
  sms_unavailable: "现在不能发短信验证码，请联系驿站工作人员帮您登录。",
  registration_not_found: "注册已过期，请重新填写。",
  registration_expired: "注册已过期，请重新填写。",
  station_not_found: "找不到这个驿站。",
  invalid_request: "填写的内容有误，请检查。",
  invalid_value: "填写的内容有误，请检查。",
  no_qr_key: "通行码暂时不能使用，请联系工作人员。",
  refused: "门没有打开",
  not_running: "驿站的门禁程序没有运行",
  expired: "开门指令到达太晚，已作废",
  failed: "驿站出了问题",
};

function $(id) { return document.getElementById(id); }
function show(el, yes) { if (typeof el === "string") { el = $(el); } if (el) { el.hidden = !yes; } }
function text(id, value) { var el = $(id); if (el) { el.textContent = value == null ? "" : String(value); } }

function cookie(name) {
  var parts = document.cookie ? document.cookie.split("; ") : [];
  for (var i = 0; i < parts.length; i++) {
    var eq = parts[i].indexOf("=");
    if (parts[i].slice(0, eq) === name) { return decodeURIComponent(parts[i].slice(eq + 1)); }
  }
  return null;
}

function newId() {
  if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
  var bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
}

function reasonText(code, fallback) {
  return REASONS[code] || fallback || "出了点问题，请稍后再试。";
}

function api(method, path, body) {
  var headers = { "Accept": "application/json" };
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    headers["X-CSRF-Token"] = state.csrf || cookie("yizhan_m_csrf") || "";
  }
  return fetch(path, {
    method: method, headers: headers, credentials: "same-origin", cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  }).then(function (response) {
    if (response.status === 204) { return { ok: true, status: 204, data: null }; }
    return response.json().catch(function () { return {}; }).then(function (data) {
      if (response.status === 401 && data.code === "phone_login_required") { state.csrf = null; state.me = null; }
      return { ok: response.ok, status: response.status, data: data };
    });
  }, function () {
    return { ok: false, status: 0, data: { code: "network", detail: "network" } };
  });
}

function loadMe() {
  return api("GET", "/api/m/me").then(function (r) {
    if (r.ok) { state.me = r.data; state.csrf = r.data.csrf_token; }
    return r.ok ? r.data : null;
  });
}

function fmtTime(iso) {
  var d = new Date(iso);
  function two(n) { return (n < 10 ? "0" : "") + n; }
  return (d.getMonth() + 1) + "月" + d.getDate() + "日 " + two(d.getHours()) + ":" + two(d.getMinutes());
}

function fmtDistance(m) {
  if (m == null) { return ""; }
  return m < 1000 ? Math.round(m) + " 米" : (m / 1000).toFixed(m < 10000 ? 1 : 0) + " 公里";
}

function hoursText(hours, openNow) {
  if (!hours || hours.always_open) { return "24小时开放"; }
  return openNow ? "开放中" : "现在不开放";
}

/* -- the station page ------------------------------------------------------------------------- */

function stationPage(stationId) {
  show("view-station", true);
  return api("GET", "/api/m/stations/" + encodeURIComponent(stationId)).then(function (r) {
    if (!r.ok) { text("st-name", reasonText(r.data.code)); return; }
    var s = r.data;
    state.station = s;
    document.title = s.name + " · 工会驿站";
    text("st-name", s.name);
    text("st-address", s.address || "");
    var pill = $("st-hours");
    pill.textContent = s.open_now ? "开放中" : "现在不开放" + (s.opens_at ? "（" + fmtTime(s.opens_at) + " 开门）" : "");
    pill.className = "pill " + (s.open_now ? "open" : "closed");
    if (!s.logged_in) { showRegister(); return; }
    return loadMe().then(function () { showStationForMember(s); });
  });
}

function showStationForMember(s) {
  show("st-register", false); show("st-code", false);
  if (s.member_status === "pending") { show("st-pending", true); return; }
  show("st-open", true);
  text("st-hello", state.me ? state.me.name + "，您好" : "");
  var button = $("open-button");
  if (!s.may_open) {
    button.disabled = true;
    text("open-note", reasonText(s.why_not));
  } else if (s.state !== "online") {
    text("open-note", "驿站暂时连不上网络：点“开门”不一定有回应，可以用通行码开门。");
  } else if (s.needs_location_m) {
    text("open-note", "开门时需要确认您在门口（会请求位置）");
  }
  button.onclick = function () { openDoor(s); };
}

function locate(timeoutMs) {
  return new Promise(function (resolve) {
    if (!navigator.geolocation) { resolve(null); return; }
    navigator.geolocation.getCurrentPosition(function (p) {
      resolve({ lat: p.coords.latitude, lon: p.coords.longitude, accuracy_m: p.coords.accuracy });
    }, function () { resolve(null); }, { enableHighAccuracy: true, timeout: timeoutMs, maximumAge: 30000 });
  });
}

function openResult(kind, message) {
  var box = $("open-result");
  box.className = "result " + kind;
  box.textContent = message;
  show(box, true);
}

function openDoor(s) {
  var button = $("open-button");
  button.disabled = true;
  show("open-pass", false);
  openResult("wait", "正在开门…");
  var ready = s.needs_location_m ? locate(8000) : Promise.resolve(null);
  var requestId = newId();
  ready.then(function (location) {
    var body = { request_id: requestId };
    if (location) { body.location = location; }
    return api("POST", "/api/m/stations/" + encodeURIComponent(s.station_id) + "/open", body);
  }).then(function (r) {
    if (!r.ok) { return { state: "denied", reason: r.data.code, message: r.data.detail }; }
    if (r.data.state !== "sent") { return r.data; }
    var wait = r.data.answer_timeout_s;
    return api("GET", "/api/m/opens/" + encodeURIComponent(requestId) + "?wait=" + wait).then(function (a) {
      return a.ok ? a.data : { state: "no_answer" };
    });
  }).then(function (result) {
    showOpenResult(result);
    setTimeout(function () { button.disabled = false; }, 3000);
  });
}

function showOpenResult(result) {
  var st = result.state;
  if (st === "opened") { openResult("ok", "门已开"); return; }
  if (st === "refused") {
    openResult("bad", reasonText(result.reason, "门没有打开") + (result.message ? "：" + result.message : ""));
    return;
  }
  if (st === "offline" || st === "no_answer" || st === "sent") {
    openResult("bad", reasonText(st === "offline" ? "station_offline" : "no_answer"));
    showInlinePass();
    return;
  }
  openResult("bad", reasonText(result.reason, result.message));
}

function showInlinePass() {
  api("GET", "/api/m/pass").then(function (r) {
    if (!r.ok) { return; }
    $("open-pass-img").src = r.data.svg;
    show("open-pass", true);
  });
}

/* -- registering ------------------------------------------------------------------------------- */

function showRegister() {
  show("st-register", true);
  $("reg-face").onchange = function () { if (!this.checked) { $("reg-cross").checked = false; } };
  $("reg-cross").onchange = function () { if (this.checked) { $("reg-face").checked = true; } };
  $("register-form").onsubmit = function (e) {
    e.preventDefault();
    text("reg-error", "");
    var name = $("reg-name").value.trim(), phone = $("reg-phone").value.trim(), kind = $("reg-kind").value;
    if (!name) { text("reg-error", "请填写姓名"); return; }
    if (!/^(\+?86)?1[3-9]\d{9}$/.test(phone.replace(/[\s-]/g, ""))) { text("reg-error", "请填写11位手机号"); return; }
    if (!kind) { text("reg-error", "请选择工作"); return; }
    if (!$("reg-agree").checked) { text("reg-error", "请勾选最后一项，表示您知道数据怎么使用"); return; }
    $("reg-submit").disabled = true;
    api("POST", "/api/m/register", {
      station_id: state.station.station_id, name: name, phone: phone, kind: kind,
      employer: $("reg-employer").value.trim() || null,
      consent_face: $("reg-face").checked, consent_cross_station: $("reg-cross").checked, agree: true,
    }).then(function (r) {
      $("reg-submit").disabled = false;
      if (!r.ok) { text("reg-error", reasonText(r.data.code, r.data.detail)); return; }
      if (r.data.state === "awaiting_staff") {
        state.csrf = r.data.csrf_token;
        show("st-register", false); show("st-pending", true);
        return;
      }
      state.code = { registration: r.data.registration_id };
      show("st-register", false); show("st-code", true);
      text("code-sent", "验证码已发到 " + r.data.phone_masked + "，" + Math.round(r.data.code_ttl_s / 60) + " 分钟内有效。");
      $("code-input").focus();
    });
  };
  $("code-form").onsubmit = function (e) {
    e.preventDefault();
    text("code-error", "");
    var code = $("code-input").value.trim();
    if (!/^\d{4,10}$/.test(code)) { text("code-error", "请输入短信里的数字验证码"); return; }
    $("code-submit").disabled = true;
    api("POST", "/api/m/register/" + state.code.registration + "/verify", { code: code }).then(function (r) {
      $("code-submit").disabled = false;
      if (!r.ok) {
        var left = r.data.attempts_left != null ? "（还能试 " + r.data.attempts_left + " 次）" : "";
        text("code-error", reasonText(r.data.code, r.data.detail) + left);
        return;
      }
      state.csrf = r.data.csrf_token;
      return stationPage(state.station.station_id);
    });
  };
  $("code-resend").onclick = function () {
    api("POST", "/api/m/register/" + state.code.registration + "/resend", {}).then(function (r) {
      text("code-error", r.ok ? "已重新发送" : reasonText(r.data.code, r.data.detail));
    });
  };
}

/* -- logging in on a new phone ------------------------------------------------------------------ */

function loginPage() {
  show("view-login", true);
  $("login-send").onclick = function () {
    text("login-error", "");
    api("POST", "/api/m/login/code", { phone: $("login-phone").value.trim() }).then(function (r) {
      text("login-error", r.ok ? "验证码已发到 " + r.data.phone_masked : reasonText(r.data.code, r.data.detail));
      if (r.ok) { $("login-code").focus(); }
    });
  };
  $("login-form").onsubmit = function (e) {
    e.preventDefault();
    api("POST", "/api/m/login/verify", {
      phone: $("login-phone").value.trim(), code: $("login-code").value.trim(),
    }).then(function (r) {
      if (!r.ok) { text("login-error", reasonText(r.data.code, r.data.detail)); return; }
      state.csrf = r.data.csrf_token;
      var back = new URLSearchParams(location.search).get("next");
      location.href = back && back.indexOf("/m/") === 0 ? back : "/m/me";
    });
  };
}

/* -- the pass ---------------------------------------------------------------------------------- */

function passPage() {
  show("view-pass", true);
  var wakeLock = null;
  function keepAwake() {
    if (navigator.wakeLock && document.visibilityState === "visible") {
      navigator.wakeLock.request("screen").then(function (lock) { wakeLock = lock; }, function () {});
    }
  }
  function refresh() {
    api("GET", "/api/m/pass").then(function (r) {
      if (!r.ok) {
        text("pass-error", r.status === 401 ? "请先登录" : reasonText(r.data.code, r.data.detail));
        if (r.status === 401) { location.href = "/m/login?next=/m/pass"; }
        return;
      }
      text("pass-error", "");
      var img = $("pass-img");
      img.src = r.data.svg;
      img.setAttribute("data-token", r.data.token);
      img.setAttribute("data-expires", r.data.expires_at);
      clearTimeout(state.passTimer);
      state.passTimer = setTimeout(refresh, r.data.refresh_s * 1000);
    });
  }
  function tick() {
    var img = $("pass-img"), exp = img.getAttribute("data-expires");
    if (!exp) { return; }
    var left = Math.max(0, Math.round((new Date(exp) - new Date()) / 1000));
    text("pass-timer", left > 0 ? "有效期还剩 " + Math.floor(left / 60) + " 分 " + (left % 60) + " 秒（会自动更新）" : "正在更新…");
  }
  refresh();
  keepAwake();
  state.passTicker = setInterval(tick, 1000);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") { refresh(); keepAwake(); }
  });
}

/* -- my data ----------------------------------------------------------------------------------- */

function mePage() {
  show("view-me", true);
  loadMe().then(function (me) {
    if (!me) { location.href = "/m/login?next=/m/me"; return; }
    var facts = $("me-facts");
    facts.innerHTML = "";
    [["姓名", me.name], ["手机号", me.phone_masked], ["工作", KINDS[me.kind] || me.kind || "—"],
     ["单位或平台", me.employer || "—"], ["状态", STATUS[me.status] || me.status],
     ["有效期至", me.valid_until ? fmtTime(me.valid_until) : "长期"], ["人脸数据", me.templates + " 份"],
     ["登录的手机", me.logins + " 部"]].forEach(function (row) {
      var dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = row[0]; dd.textContent = row[1];
      facts.appendChild(dt); facts.appendChild(dd);
    });
    renderConsents(me);
    loadVisits();
    pollDeletion(false);
  });
  $("me-face").onchange = function () { setConsents({ consent_face: this.checked }); };
  $("me-cross").onchange = function () { setConsents({ consent_cross_station: this.checked }); };
  $("face-delete").onclick = function () { show("face-confirm", true); };
  $("face-confirm-no").onclick = function () { show("face-confirm", false); };
  $("face-confirm-yes").onclick = function () {
    show("face-confirm", false);
    api("POST", "/api/m/face/delete", { confirm: true }).then(function (r) {
      if (!r.ok) { text("face-status", reasonText(r.data.code, r.data.detail)); show("face-status", true); return; }
      loadMe().then(renderConsents);
      renderDeletion(r.data);
      pollDeletion(true);
    });
  };
  $("logout").onclick = function () { logout(false); };
  $("logout-all").onclick = function () { logout(true); };
}

function renderConsents(me) {
  if (!me) { return; }
  $("me-face").checked = me.consents.face;
  $("me-cross").checked = me.consents.cross_station;
  text("me-face-at", me.consents.face_at ? (me.consents.face ? "同意于 " : "撤回于 ") + fmtTime(me.consents.face_at) : "");
  text("me-cross-at", me.consents.cross_station_at ? (me.consents.cross_station ? "同意于 " : "撤回于 ") + fmtTime(me.consents.cross_station_at) : "");
}

function setConsents(body) {
  text("me-consent-error", "");
  api("POST", "/api/m/consents", body).then(function (r) {
    if (!r.ok) { text("me-consent-error", reasonText(r.data.code, r.data.detail)); }
    else { state.me = r.data; renderConsents(r.data); }
    if (body.consent_face === false) { pollDeletion(true); }
  });
}

function renderDeletion(d) {
  var box = $("face-status");
  if (d.state === "none") { show(box, false); return; }
  box.className = "result " + (d.state === "done" ? "ok" : "wait");
  box.textContent = d.state === "done"
    ? "人脸数据已在所有驿站删除（" + fmtTime(d.completed_at) + "）"
    : "正在删除：还有 " + d.stations_pending + " 个驿站没有确认…";
  box.setAttribute("data-state", d.state);
  show(box, true);
}

function pollDeletion(keepGoing) {
  api("GET", "/api/m/face/deletion").then(function (r) {
    if (!r.ok) { return; }
    renderDeletion(r.data);
    if (keepGoing && r.data.state === "pending") { setTimeout(function () { pollDeletion(true); }, 2000); }
  });
}

function loadVisits() {
  api("GET", "/api/m/visits?limit=30").then(function (r) {
    var list = $("me-visits");
    list.innerHTML = "";
    if (!r.ok || !r.data.length) { var li = document.createElement("li"); li.textContent = "还没有记录"; list.appendChild(li); return; }
    r.data.forEach(function (v) {
      var li = document.createElement("li");
      li.textContent = fmtTime(v.ts) + " · " + (v.station_name || v.station_id) + " · " +
        (EVENTS[v.kind] || v.kind) + (v.method ? "（" + (METHODS[v.method] || v.method) + "）" : "");
      list.appendChild(li);
    });
  });
}

function logout(everywhere) {
  api("POST", "/api/m/logout", { everywhere: everywhere }).then(function () { location.href = "/m/"; });
}

/* -- stations near me -------------------------------------------------------------------------- */

function nearbyPage() {
  show("view-nearby", true);
  listStations(null);
  $("locate").onclick = function () {
    text("locate-note", "正在定位…");
    locate(10000).then(function (here) {
      if (!here) { text("locate-note", "没能定位（可能没有允许使用位置），下面按编号排列。"); return; }
      text("locate-note", "按距离排列。位置只用来计算距离，不会被保存。");
      listStations(here);
    });
  };
}

function navHref(link, app) {
  var ua = navigator.userAgent || "";
  if (/MicroMessenger/i.test(ua)) { return link.web; }  /* WeChat blocks app schemes */
  if (app === "amap" && /iPhone|iPad|iPod/i.test(ua)) { return link.app.replace("amapuri://route/plan/?", "iosamap://path?"); }
  return link.app;
}

function listStations(here) {
  var query = here ? "?lat=" + here.lat + "&lon=" + here.lon : "";
  api("GET", "/api/public/stations" + query).then(function (r) {
    var list = $("stations");
    list.innerHTML = "";
    if (!r.ok) { return; }
    r.data.forEach(function (s) {
      var li = document.createElement("li");
      li.setAttribute("data-station", s.station_id);
      var h = document.createElement("h3");
      if (s.distance_m != null) {
        var d = document.createElement("span"); d.className = "distance"; d.textContent = fmtDistance(s.distance_m);
        h.appendChild(d);
      }
      h.appendChild(document.createTextNode(s.name));
      li.appendChild(h);
      var pill = document.createElement("span");
      pill.className = "pill " + (s.open_now ? "open" : "closed");
      pill.textContent = s.open_now ? "开放中" : "现在不开放";
      li.appendChild(pill);
      var hours = document.createElement("span"); hours.className = "muted small"; hours.textContent = " " + hoursText(s.hours, s.open_now);
      li.appendChild(hours);
      if (s.address) { var a = document.createElement("p"); a.className = "muted"; a.textContent = s.address; li.appendChild(a); }
      if (s.services && s.services.length) {
        var sv = document.createElement("p"); sv.className = "services";
        s.services.forEach(function (x) { var c = document.createElement("span"); c.textContent = SERVICES[x] || x; sv.appendChild(c); });
        li.appendChild(sv);
      }
      if (s.contact && s.contact.phone) {
        var t = document.createElement("a"); t.href = "tel:" + s.contact.phone; t.textContent = "电话 " + s.contact.phone;
        li.appendChild(t);
      }
      if (s.nav && s.nav.amap) {
        var nav = document.createElement("div"); nav.className = "nav";
        [["amap", "高德地图"], ["baidu", "百度地图"], ["tencent", "腾讯地图"]].forEach(function (pair) {
          var link = s.nav[pair[0]];
          var n = document.createElement("a");
          n.textContent = pair[1]; n.href = navHref(link, pair[0]); n.setAttribute("data-app", pair[0]);
          n.setAttribute("data-web", link.web);
          n.onclick = function () {
            /* an app scheme with no app installed does nothing: fall back to the vendor's web page */
            if (n.href.indexOf("https:") === 0) { return; }
            var started = Date.now();
            setTimeout(function () {
              if (document.visibilityState === "visible" && Date.now() - started < 2500) { location.href = link.web; }
            }, 1500);
          };
          nav.appendChild(n);
        });
        li.appendChild(nav);
      }
      list.appendChild(li);
    });
  });
}

/* -- home and routing -------------------------------------------------------------------------- */

function homePage() {
  show("view-home", true);
  loadMe().then(function (me) { show("home-pass", !!me); show("home-login", !me); });
}

function route() {
  var path = location.pathname;
  show("loading", false);
  var current = { "/m/pass": "pass", "/m/nearby": "nearby", "/m/me": "me" }[path];
  Array.prototype.forEach.call(document.querySelectorAll("[data-nav]"), function (a) {
    a.className = a.getAttribute("data-nav") === current ? "current" : "";
  });
  var m = path.match(/^\/m\/s\/([A-Za-z0-9._-]{1,64})$/);
  if (m) { return stationPage(decodeURIComponent(m[1])); }
  if (path === "/m/pass") { return passPage(); }
  if (path === "/m/me") { return mePage(); }
  if (path === "/m/nearby") { return nearbyPage(); }
  if (path === "/m/login") { return loginPage(); }
  return homePage();
}

document.addEventListener("DOMContentLoaded", route);
