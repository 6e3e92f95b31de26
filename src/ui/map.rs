//! The service map's layout, computed on the server and drawn as SVG: services in layers from
//! left to right by their longest call path from a service nobody calls (cycles broken where a
//! depth-first walk finds them), ordered within a layer by the mean position of their callers
//! (two barycentre passes), edges as curves with their labels at the middle.

use std::collections::{BTreeMap, BTreeSet};

pub struct Edge {
    pub from: String,
    pub to: String,
    pub label: String,
    pub error: bool,
}

pub struct Node {
    pub name: String,
    pub short: String,
    pub href: String,
    pub x: i64,
    pub y: i64,
}

pub struct EdgeDraw {
    pub from: String,
    /// The label's second line (the part after `|`).
    pub label2: String,
    pub to: String,
    pub path: String,
    pub lx: i64,
    pub ly: i64,
    pub label: String,
    pub error: bool,
}

pub struct Layout {
    pub width: i64,
    pub height: i64,
    pub nodes: Vec<Node>,
    pub edges: Vec<EdgeDraw>,
}

pub const NODE_W: i64 = 180;
pub const NODE_H: i64 = 40;
const COL: i64 = 400;
const ROW: i64 = 100;
const MARGIN: i64 = 20;

pub fn layout(edges: Vec<Edge>, href: impl Fn(&str) -> String) -> Layout {
    let names: BTreeSet<String> = edges
        .iter()
        .flat_map(|e| [e.from.clone(), e.to.clone()])
        .collect();
    let idx: BTreeMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let n = names.len();
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for e in &edges {
        let (a, b) = (idx[e.from.as_str()], idx[e.to.as_str()]);
        if a != b && !out[a].contains(&b) {
            out[a].push(b);
        }
    }
    // Depth-first: edges to a node on the current path are back edges (cycles), left out.
    let mut state = vec![0u8; n]; // 0 new, 1 on path, 2 done
    let mut dag: Vec<Vec<usize>> = vec![Vec::new(); n];
    // Walks start from services nobody calls, so cycles are broken downstream of entry points.
    let mut indeg = vec![0usize; n];
    for targets in &out {
        for &b in targets {
            indeg[b] += 1;
        }
    }
    let mut starts: Vec<usize> = (0..n).collect();
    starts.sort_by_key(|&v| (indeg[v] > 0, v));
    for s in starts {
        if state[s] != 0 {
            continue;
        }
        let mut stack = vec![(s, 0usize)];
        state[s] = 1;
        while let Some((v, i)) = stack.pop() {
            if i < out[v].len() {
                stack.push((v, i + 1));
                let w = out[v][i];
                match state[w] {
                    0 => {
                        dag[v].push(w);
                        state[w] = 1;
                        stack.push((w, 0));
                    }
                    2 => dag[v].push(w),
                    _ => {}
                }
            } else {
                state[v] = 2;
            }
        }
    }
    // Longest path layering.
    let mut layer = vec![0usize; n];
    let mut changed = true;
    let mut rounds = 0;
    while changed && rounds <= n {
        changed = false;
        rounds += 1;
        for v in 0..n {
            for &w in &dag[v] {
                if layer[w] < layer[v] + 1 {
                    layer[w] = layer[v] + 1;
                    changed = true;
                }
            }
        }
    }
    let depth = layer.iter().copied().max().map_or(0, |m| m + 1);
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for v in 0..n {
        layers[layer[v]].push(v);
    }
    let mut pos = vec![0f64; n];
    for l in &layers {
        for (i, v) in l.iter().enumerate() {
            pos[*v] = i as f64;
        }
    }
    for _ in 0..2 {
        for l in layers.iter_mut().skip(1) {
            let mut keyed: Vec<(f64, usize)> = l
                .iter()
                .map(|&v| {
                    let callers: Vec<f64> = (0..n)
                        .filter(|u| dag[*u].contains(&v))
                        .map(|u| pos[u])
                        .collect();
                    let b = if callers.is_empty() {
                        pos[v]
                    } else {
                        callers.iter().sum::<f64>() / callers.len() as f64
                    };
                    (b, v)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            *l = keyed.into_iter().map(|(_, v)| v).collect();
            for (i, v) in l.iter().enumerate() {
                pos[*v] = i as f64;
            }
        }
    }
    let tallest = layers.iter().map(Vec::len).max().unwrap_or(0) as i64;
    let xy = |v: usize| -> (i64, i64) {
        let l = &layers[layer[v]];
        // Centre shorter layers vertically.
        let offset = (tallest - l.len() as i64) * ROW / 2;
        (
            MARGIN + layer[v] as i64 * COL,
            MARGIN + offset + pos[v] as i64 * ROW,
        )
    };
    let names_v: Vec<&String> = names.iter().collect();
    let nodes = (0..n)
        .map(|v| {
            let (x, y) = xy(v);
            let name = names_v[v].clone();
            let short = if name.chars().count() > 22 {
                format!("{}…", name.chars().take(21).collect::<String>())
            } else {
                name.clone()
            };
            Node {
                href: href(&name),
                name,
                short,
                x,
                y,
            }
        })
        .collect();
    let edges = edges
        .into_iter()
        .map(|e| {
            let (a, b) = (idx[e.from.as_str()], idx[e.to.as_str()]);
            let (ax, ay) = xy(a);
            let (bx, by) = xy(b);
            let (x1, y1) = (ax + NODE_W, ay + NODE_H / 2);
            let (x2, y2) = if a == b {
                (ax + NODE_W, ay + NODE_H / 2 + 8)
            } else {
                (bx, by + NODE_H / 2)
            };
            let bend = ((x2 - x1).abs() / 2).max(60);
            let path = format!(
                "M{x1},{y1} C{},{y1} {},{y2} {x2},{y2}",
                x1 + bend,
                x2 - bend
            );
            let (l1, l2) = e.label.split_once('|').unwrap_or((e.label.as_str(), ""));
            EdgeDraw {
                label2: l2.to_string(),
                from: e.from,
                to: e.to,
                path,
                lx: (x1 + x2) / 2,
                ly: (y1 + y2) / 2 - 18,
                label: l1.to_string(),
                error: e.error,
            }
        })
        .collect();
    Layout {
        width: MARGIN * 2 + (depth.max(1) as i64 - 1) * COL + NODE_W + 120,
        height: MARGIN * 2 + (tallest.max(1) - 1) * ROW + NODE_H + 20,
        nodes,
        edges,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(a: &str, b: &str) -> Edge {
        Edge {
            from: a.into(),
            to: b.into(),
            label: String::new(),
            error: false,
        }
    }

    #[test]
    fn layers_follow_calls_and_cycles_do_not_loop() {
        let l = layout(
            vec![
                e("user", "frontend"),
                e("frontend", "backend"),
                e("backend", "db"),
                e("frontend", "db"),
                e("db", "frontend"),
            ],
            |n| format!("/s/{n}"),
        );
        let x = |name: &str| l.nodes.iter().find(|n| n.name == name).unwrap().x;
        assert!(
            x("user") < x("frontend") && x("frontend") < x("backend") && x("backend") < x("db")
        );
        assert_eq!(l.edges.len(), 5);
        assert_eq!(
            l.nodes.iter().find(|n| n.name == "db").unwrap().href,
            "/s/db"
        );
        assert!(l.width > 0 && l.height > 0);
    }
}
