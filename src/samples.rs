//! The bundled sample events: a realistic TLM of each entity type, for `demo` and
//! `test --sample` (the same files the tests use).

/// Sample events the runner plays (in `demo`, and `test --sample`):
/// a realistic TLM of each entity type, by type (the 23 KB note among them).
pub const SAMPLES: [(&str, &str); 18] = [
    ("user.created", include_str!("samples/user.created.json")),
    ("user.modified", include_str!("samples/user.modified.json")),
    (
        "workspace.created",
        include_str!("samples/workspace.created.json"),
    ),
    (
        "workspace_member.created",
        include_str!("samples/workspace_member.created.json"),
    ),
    (
        "workspace_member.modified",
        include_str!("samples/workspace_member.modified.json"),
    ),
    (
        "content.created.html-document",
        include_str!("samples/content.created.html-document.json"),
    ),
    (
        "content.modified.html-document",
        include_str!("samples/content.modified.html-document.json"),
    ),
    (
        "content.created.file",
        include_str!("samples/content.created.file.json"),
    ),
    (
        "content.deleted.folder",
        include_str!("samples/content.deleted.folder.json"),
    ),
    (
        "content.created.thread",
        include_str!("samples/content.created.thread.json"),
    ),
    (
        "content.created.comment",
        include_str!("samples/content.created.comment.json"),
    ),
    (
        "content.modified.todo",
        include_str!("samples/content.modified.todo.json"),
    ),
    (
        "mention.created",
        include_str!("samples/mention.created.json"),
    ),
    (
        "reaction.created",
        include_str!("samples/reaction.created.json"),
    ),
    (
        "workspace_subscription.created",
        include_str!("samples/workspace_subscription.created.json"),
    ),
    ("tag.created", include_str!("samples/tag.created.json")),
    (
        "content_tag.created",
        include_str!("samples/content_tag.created.json"),
    ),
    (
        "user_call.created",
        include_str!("samples/user_call.created.json"),
    ),
];
