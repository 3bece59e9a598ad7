//! `on_failure`: each hook's names resolved to the hooks they name, once all
//! hooks are read; a name that no hook has and a cycle are refused at the name.

use std::collections::HashMap;
use std::sync::Arc;

use toml::Spanned;

use super::validate::Parser;
use crate::hook::Hook;

/// A hook's `on_failure` as written.
pub(super) type FailureNames = Vec<Spanned<String>>;

impl Parser<'_> {
    /// The hooks in file order, each with its failure hooks. `declared` holds
    /// every name of the file, a hook refused for another mistake included, so
    /// that naming it is not reported as unknown as well.
    pub(super) fn link_failure_hooks(
        &mut self,
        hooks: Vec<(Hook, FailureNames)>,
        declared: &HashMap<String, usize>,
    ) -> Vec<Arc<Hook>> {
        let index: HashMap<&str, usize> = hooks
            .iter()
            .enumerate()
            .map(|(i, (h, _))| (h.name.as_str(), i))
            .collect();
        // Edges to hooks that were read; unknown names are reported here.
        let mut edges: Vec<Vec<(usize, Spanned<String>)>> = Vec::with_capacity(hooks.len());
        let mut problems = Vec::new();
        for (hook, names) in &hooks {
            let mut out = Vec::new();
            for name in names {
                match index.get(name.get_ref().as_str()) {
                    Some(&target) => out.push((target, name.clone())),
                    None if declared.contains_key(name.get_ref()) => {}
                    None => problems.push((
                        name.span(),
                        hook.name.clone(),
                        format!(
                            "on_failure names `{}`, but no hook has that name",
                            name.get_ref()
                        ),
                    )),
                }
            }
            edges.push(out);
        }
        let order = self.finish_order(&hooks, &edges);
        for (span, hook, message) in problems {
            self.problem(span, Some(&hook), message);
        }

        // Built children first, so that each hook holds its failure hooks.
        let mut built: Vec<Option<Arc<Hook>>> = vec![None; hooks.len()];
        let mut hooks: Vec<Option<Hook>> = hooks.into_iter().map(|(h, _)| Some(h)).collect();
        for i in order {
            let Some(mut hook) = hooks[i].take() else {
                continue;
            };
            hook.on_failure = edges[i]
                .iter()
                .filter_map(|(target, _)| built[*target].clone())
                .collect();
            built[i] = Some(Arc::new(hook));
        }
        built.into_iter().flatten().collect()
    }

    /// Depth-first over the failure edges: the order in which hooks finish
    /// (every hook after those it names). An edge back into the path is a
    /// cycle, reported at the name that closes it and left out.
    fn finish_order(
        &mut self,
        hooks: &[(Hook, FailureNames)],
        edges: &[Vec<(usize, Spanned<String>)>],
    ) -> Vec<usize> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        let mut mark = vec![Mark::New; hooks.len()];
        let mut order = Vec::with_capacity(hooks.len());
        for root in 0..hooks.len() {
            if mark[root] != Mark::New {
                continue;
            }
            // (hook, next edge to follow); iterative, as a chain may be long.
            let mut stack = vec![(root, 0)];
            mark[root] = Mark::OnPath;
            while let Some(top) = stack.last_mut() {
                let (at, next) = *top;
                top.1 += 1;
                let Some((target, name)) = edges[at].get(next) else {
                    mark[at] = Mark::Done;
                    order.push(at);
                    stack.pop();
                    continue;
                };
                match mark[*target] {
                    Mark::New => {
                        mark[*target] = Mark::OnPath;
                        stack.push((*target, 0));
                    }
                    Mark::OnPath => {
                        let from = stack.iter().position(|(h, _)| h == target).unwrap_or(0);
                        let mut cycle: Vec<&str> = stack[from..]
                            .iter()
                            .map(|(h, _)| hooks[*h].0.name.as_str())
                            .collect();
                        cycle.push(hooks[*target].0.name.as_str());
                        let message = format!(
                            "on_failure makes a cycle: {}; a failure hook must not lead back to itself",
                            cycle.join(" → ")
                        );
                        self.problem(name.span(), Some(&hooks[at].0.name), message);
                    }
                    Mark::Done => {}
                }
            }
        }
        order
    }
}
