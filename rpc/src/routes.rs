//! The route table: each route's name, declared arguments, cache policy and
//! handler. Adding a route is one line in [`ROUTES`] plus its handler.

use std::sync::Arc;

use engine_types::{sha256, Height};
use serde_json::{json, Value};

use crate::backend::{AbciQueryRequest, Backend, BoxFuture};
use crate::error::RpcError;
use crate::params::{ArgKind, Args, Param};
use crate::render;

/// A route handler: decoded arguments in, rendered result out.
pub type Handler = fn(Arc<dyn Backend>, Args) -> BoxFuture<'static, Result<Value, RpcError>>;

/// When a successful response may carry `Cache-Control: public, max-age=86400`.
#[derive(Clone, Copy, Debug)]
pub enum Cache {
    /// Never.
    Never,
    /// Always (CometBFT `Cacheable()`).
    Always,
    /// Only when every named argument is given a non-default value
    /// (CometBFT `Cacheable("height")`).
    WithArgs(&'static [&'static str]),
}

/// One RPC method.
#[derive(Clone, Copy)]
pub struct Route {
    /// Method name, also the URI path.
    pub name: &'static str,
    /// Declared arguments, in positional order.
    pub params: &'static [Param],
    /// Cache policy.
    pub cache: Cache,
    /// The handler.
    pub handler: Handler,
}

impl Route {
    /// Whether a successful call with `args` is cacheable.
    pub fn cacheable(&self, args: &Args) -> bool {
        match self.cache {
            Cache::Never => false,
            Cache::Always => true,
            Cache::WithArgs(names) => args.supplied && names.iter().all(|n| args.is_set(n)),
        }
    }
}

const fn p(name: &'static str, kind: ArgKind) -> Param {
    Param { name, kind }
}

use ArgKind::{Bool, Bytes, HexBytes, Int, Str};

/// Every route this server answers, over JSON-RPC and URI alike.
pub const ROUTES: &[Route] = &[
    route("health", &[], Cache::Never, health),
    route("status", &[], Cache::Never, status),
    route("consensus_state", &[], Cache::Never, consensus_state),
    route("net_info", &[], Cache::Never, net_info),
    route(
        "block",
        &[p("height", Int)],
        Cache::WithArgs(&["height"]),
        block,
    ),
    route(
        "commit",
        &[p("height", Int)],
        Cache::WithArgs(&["height"]),
        commit,
    ),
    route(
        "validators",
        &[p("height", Int), p("page", Int), p("per_page", Int)],
        Cache::WithArgs(&["height"]),
        validators,
    ),
    route("abci_info", &[], Cache::Always, abci_info),
    route(
        "abci_query",
        &[
            p("path", Str),
            p("data", HexBytes),
            p("height", Int),
            p("prove", Bool),
        ],
        Cache::Never,
        abci_query,
    ),
    route(
        "broadcast_tx_sync",
        &[p("tx", Bytes)],
        Cache::Never,
        broadcast_tx_sync,
    ),
    route(
        "broadcast_tx_commit",
        &[p("tx", Bytes)],
        Cache::Never,
        broadcast_tx_commit,
    ),
];

const fn route(
    name: &'static str,
    params: &'static [Param],
    cache: Cache,
    handler: Handler,
) -> Route {
    Route {
        name,
        params,
        cache,
        handler,
    }
}

/// Finds a route by name.
pub fn find(name: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.name == name)
}

/// Default and maximum `per_page` of paginated routes.
pub const DEFAULT_PER_PAGE: i64 = 30;
/// Maximum `per_page`.
pub const MAX_PER_PAGE: i64 = 100;

/// A height argument: absent is latest; <= 0 is CometBFT's error.
fn height_arg(args: &Args, name: &str) -> Result<Option<Height>, RpcError> {
    match args.int(name) {
        None => Ok(None),
        Some(h) if h <= 0 => Err(RpcError::internal(format!(
            "height must be greater than 0, but got {h}"
        ))),
        // h > 0, so the conversion is lossless.
        Some(h) => Ok(Some(h.unsigned_abs())),
    }
}

fn health(b: Arc<dyn Backend>, _: Args) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move {
        b.health().await?;
        Ok(json!({}))
    })
}

fn status(b: Arc<dyn Backend>, _: Args) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move { Ok(render::result_status(&b.status().await?)) })
}

fn consensus_state(b: Arc<dyn Backend>, _: Args) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move { Ok(render::result_consensus_state(&b.consensus_state().await?)) })
}

fn net_info(b: Arc<dyn Backend>, _: Args) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move { Ok(render::result_net_info(&b.net_info().await?)) })
}

fn block(b: Arc<dyn Backend>, a: Args) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move {
        let h = height_arg(&a, "height")?;
        Ok(render::result_block(&b.block(h).await?))
    })
}

fn commit(b: Arc<dyn Backend>, a: Args) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move {
        let h = height_arg(&a, "height")?;
        Ok(render::result_commit(&b.commit(h).await?))
    })
}

/// CometBFT's pagination: per_page defaults to 30 and is clamped to
/// [1, 100] (values < 1 mean default); page defaults to 1 and must lie in
/// [1, pages].
pub fn paginate(
    total: usize,
    page: Option<i64>,
    per_page: Option<i64>,
) -> Result<(usize, usize), RpcError> {
    let per_page = match per_page {
        None => DEFAULT_PER_PAGE,
        Some(n) if n < 1 => DEFAULT_PER_PAGE,
        Some(n) => n.min(MAX_PER_PAGE),
    };
    let per = usize::try_from(per_page).unwrap_or(30);
    let page = match page {
        None => 1,
        Some(page) => {
            let pages = (total.saturating_sub(1) / per + 1) as i64;
            if page <= 0 || page > pages {
                return Err(RpcError::internal(format!(
                    "page should be within [1, {pages}] range, given {page}"
                )));
            }
            usize::try_from(page).unwrap_or(1)
        }
    };
    let skip = (page - 1).saturating_mul(per).min(total);
    Ok((skip, per.min(total - skip)))
}

fn validators(b: Arc<dyn Backend>, a: Args) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move {
        let h = height_arg(&a, "height")?;
        let set = b.validators(h).await?;
        let (skip, count) = paginate(set.validators.len(), a.int("page"), a.int("per_page"))?;
        let page = &set.validators[skip..skip + count];
        Ok(render::result_validators(
            set.block_height,
            page,
            set.validators.len(),
        ))
    })
}

fn abci_info(b: Arc<dyn Backend>, _: Args) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move { Ok(render::result_abci_info(&b.abci_info().await?)) })
}

fn abci_query(b: Arc<dyn Backend>, a: Args) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move {
        let q = AbciQueryRequest {
            path: a.string("path"),
            data: a.bytes("data"),
            height: a.int("height").unwrap_or(0),
            prove: a.bool("prove"),
        };
        Ok(render::result_abci_query(&b.abci_query(q).await?))
    })
}

fn broadcast_tx_sync(b: Arc<dyn Backend>, a: Args) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move {
        let tx = a.bytes("tx");
        let hash = sha256(&tx);
        let r = b.broadcast_tx_sync(tx).await?;
        Ok(render::result_broadcast_tx(&r, &hash))
    })
}

fn broadcast_tx_commit(
    b: Arc<dyn Backend>,
    a: Args,
) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move {
        let tx = a.bytes("tx");
        let hash = sha256(&tx);
        let r = b.broadcast_tx_commit(tx).await?;
        Ok(render::result_broadcast_tx_commit(&r, &hash))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination_matches_cometbft() {
        assert_eq!(paginate(5, None, None).ok(), Some((0, 5)));
        assert_eq!(paginate(5, Some(2), Some(2)).ok(), Some((2, 2)));
        assert_eq!(paginate(5, Some(3), Some(2)).ok(), Some((4, 1)));
        assert!(paginate(5, Some(4), Some(2)).is_err());
        assert!(paginate(5, Some(0), None).is_err());
        assert_eq!(paginate(0, Some(1), None).ok(), Some((0, 0)));
        assert_eq!(paginate(250, Some(3), Some(1000)).ok(), Some((200, 50)));
        assert_eq!(paginate(5, None, Some(-3)).ok(), Some((0, 5)));
    }
}
