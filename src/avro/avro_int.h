/*
 * avro_int.h — the private schema tree of MetaSync's Avro codec (ms_avro.h), shared by the parser
 * (avro_schema.c), the resolution checker (avro_compat.c) and the binary codec (avro_binary.c).
 *
 * Ownership: every node of a schema lives in the schema's node list (ms_avro_schema.nodes) and is
 * freed with it. Named-type references are resolved at parse time into plain pointers to the
 * defining node, so the tree may contain cycles (recursive records); walkers must bound their
 * recursion by memoizing (compat) or by the data (decode/encode with a depth limit).
 * Thread rules: immutable after ms_avro_schema_parse returns; read from any thread.
 */
#ifndef MS_AVRO_INT_H
#define MS_AVRO_INT_H

#include "ms_avro.h"

typedef enum {
    AV_NULL,
    AV_BOOLEAN,
    AV_INT,
    AV_LONG,
    AV_FLOAT,
    AV_DOUBLE,
    AV_BYTES,
    AV_STRING,
    AV_RECORD,
    AV_ENUM,
    AV_ARRAY,
    AV_MAP,
    AV_UNION,
    AV_FIXED,
} av_type;

typedef struct av_node av_node;

/* One entry of a node's sorted name index (field names of a record, symbols of an enum). */
typedef struct av_name_ix {
    const char *name; /* points into the node's own strings */
    size_t idx;       /* field or symbol index */
} av_name_ix;

typedef struct av_field {
    char *name;
    av_node *type;
    bool has_default;
    json_object *def; /* the default as written (owned; NULL for JSON null) */
    char **aliases;   /* simple names */
    size_t naliases;
} av_field;

struct av_node {
    av_type type;
    size_t id;      /* index in the schema's node list, for memo tables */
    char *fullname; /* named types: "ns.Name" */
    char *logical;  /* logicalType annotation or NULL */
    char **aliases; /* named types: aliases as full names */
    size_t naliases;
    av_field *fields; /* record / error */
    size_t nfields;
    char **symbols; /* enum */
    size_t nsymbols;
    long enum_default;  /* index into symbols, -1 when none */
    av_node *items;     /* array items / map values */
    av_node **branches; /* union */
    size_t nbranches;
    size_t size;       /* fixed */
    av_name_ix *index; /* record field names or enum symbols, sorted by name (strcmp) */
};

struct ms_avro_schema {
    char *text;
    size_t text_len;
    av_node *root;
    av_node **nodes; /* all nodes, owned */
    size_t nnodes;
};

/* The type's keyword ("int", "record", ...). */
const char *av_type_name(av_type t);
/* True for the named types (record, enum, fixed). */
static inline bool av_is_named(const av_node *n)
{
    return n->type == AV_RECORD || n->type == AV_ENUM || n->type == AV_FIXED;
}
/* Name used in messages: the full name of a named type, else the type keyword. */
const char *av_node_label(const av_node *n);

/* Index of the record field or enum symbol called name in n, or -1: a binary search of the
 * index built at parse time, so lookups stay O(log n) on wide records and enums. */
long av_lookup(const av_node *n, const char *name);
/* Index of the writer field that reader field rf reads (by rf's name, else by its aliases in
 * order), or -1 — the one matching rule of the checker and the decoder. */
long av_writer_field(const av_node *w, const av_field *rf);

/* Natural JSON for a field default as written in the schema (validated at parse): float/double
 * become doubles; everything else is copied. Returns a new reference (NULL for null). */
json_object *av_default_to_natural(const av_node *n, json_object *def);

/* True when the writer's node can be read as the reader's node at the top level (same kind and
 * name/alias match, or a promotion) — the union branch choice of decoding, without recursion. */
bool av_shallow_match(const av_node *r, const av_node *w);
/* The reader union r's branch that reads writer node w (not a union): the same type with the
 * same full name, else the first that reads it by an alias or a promotion; NULL when none. The
 * one choice of both the checker and the decoder (the spec's "first schema that matches"). */
const av_node *av_pick_branch(const av_node *r, const av_node *w);
/* True when reader names/aliases accept writer's full name. */
bool av_names_match(const av_node *r, const av_node *w);

#endif
