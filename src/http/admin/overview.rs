//! `GET /admin`: the overview, with small bar charts drawn on the server as inline SVG (no
//! script, no chart library; the CSP allows no inline style, so they use attributes only).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::{Admin, AdminFrame, Section, admin_failure};
use crate::admin::overview::{self, Overview, OverviewSettings, Series};
use crate::http::AppState;
use crate::http::browser::html;
use crate::http::views::when;

/// One bar of a chart: its place and height in the chart's 0..100 box, and its label.
pub struct Bar {
    pub x: String,
    pub y: String,
    pub width: String,
    pub height: String,
    pub title: String,
}

/// A series drawn as bars.
pub struct Chart {
    pub label: &'static str,
    pub total: i64,
    pub bars: Vec<Bar>,
    /// What the chart shows, for screen readers.
    pub summary: String,
}

fn label(name: &str) -> &'static str {
    match name {
        "sign_ins" => "Sign-ins",
        "failed_sign_ins" => "Failed sign-ins",
        "lockouts" => "Lock-outs",
        "refresh_reuse_detections" => "Refresh token reuse detections",
        _ => "Other",
    }
}

fn chart(series: &Series, unit: &str) -> Chart {
    let n = series.buckets.len().max(1);
    let max = series.buckets.iter().copied().max().unwrap_or(0).max(1);
    let slot = 100.0 / n as f64;
    let bars = series
        .buckets
        .iter()
        .enumerate()
        .map(|(i, &count)| {
            let h = if count > 0 {
                (count as f64 / max as f64 * 38.0).max(1.0)
            } else {
                0.0
            };
            Bar {
                x: format!("{:.2}", i as f64 * slot + slot * 0.1),
                y: format!("{:.2}", 40.0 - h),
                width: format!("{:.2}", slot * 0.8),
                height: format!("{h:.2}"),
                title: format!(
                    "{count} ({} {unit}{} ago)",
                    n - 1 - i,
                    if n - 1 - i == 1 { "" } else { "s" }
                ),
            }
        })
        .collect();
    let l = label(series.name);
    Chart {
        label: l,
        total: series.total,
        summary: format!("{l}: {} in all, at most {max} per {unit}", series.total),
        bars,
    }
}

pub struct KeyRow {
    pub kid: String,
    pub state: &'static str,
    pub activate_at: String,
    pub expire_at: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/overview.html")]
struct OverviewPage {
    frame: AdminFrame,
    day: Vec<Chart>,
    month: Vec<Chart>,
    live_sessions: i64,
    tokens_issued: u64,
    keys: Vec<KeyRow>,
    next_rotation: Option<String>,
    attention: Vec<String>,
}

/// The overview's settings from the configuration.
pub(crate) fn settings(state: &AppState) -> OverviewSettings {
    OverviewSettings {
        key_rotation_interval: i64::try_from(state.config.key_rotation_interval.as_secs())
            .unwrap_or(i64::MAX / 4),
        session_idle_ttl: state.provider.settings.session_idle_ttl,
    }
}

fn view(frame: AdminFrame, o: Overview) -> OverviewPage {
    OverviewPage {
        frame,
        day: o
            .last_24_hours
            .series
            .iter()
            .map(|s| chart(s, "hour"))
            .collect(),
        month: o
            .last_30_days
            .series
            .iter()
            .map(|s| chart(s, "day"))
            .collect(),
        live_sessions: o.live_sessions,
        tokens_issued: o.tokens_issued_since_start,
        keys: o
            .keys
            .into_iter()
            .map(|k| KeyRow {
                kid: k.kid,
                state: k.state,
                activate_at: when(k.activate_at),
                expire_at: k.expire_at.map(when),
            })
            .collect(),
        next_rotation: o.next_rotation.map(when),
        attention: o.attention,
    }
}

/// GET /admin
pub(super) async fn page(
    admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> HttpResponse {
    let o = match overview::overview(&state.provider, settings(&state)).await {
        Ok(o) => o,
        Err(e) => return admin_failure(&e),
    };
    let (frame, csrf) = admin.frame(&state, &req, Section::Overview);
    html(StatusCode::OK, &csrf, view(frame, o).render())
}
