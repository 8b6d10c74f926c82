/* YAML → struct ynode using libyaml's event API. The event API (rather than
 * yaml_parser_load) lets us refuse anchors and aliases before anything is
 * expanded, and keeps every node's line:column for error messages. */
#include "policy/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

void pol__yn_free(struct ynode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++)
		pol__yn_free(n->items[i]);
	free(n->items);
	free(n->str);
	free(n);
}

static int yn_push(struct ynode *parent, struct ynode *child)
{
	if (parent->n == parent->cap) {
		size_t cap = parent->cap ? parent->cap * 2 : 8;
		struct ynode **items = realloc(parent->items, cap * sizeof(*items));

		if (!items)
			return -ENOMEM;
		parent->items = items;
		parent->cap = cap;
	}
	parent->items[parent->n++] = child;
	return 0;
}

static struct ynode *yn_new(enum ynode_type type, const yaml_mark_t *m)
{
	struct ynode *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->type = type;
	n->line = (unsigned)m->line + 1;
	n->col = (unsigned)m->column + 1;
	return n;
}

static int yn_fail(struct kiln_err *err, const char *file, const yaml_mark_t *m,
		   const char *msg)
{
	return kiln_err_set(err, -KILN_EFORMAT, "%s:%zu:%zu: %s", file, m->line + 1,
			    m->column + 1, msg);
}

int pol__yn_parse(const char *text, size_t size, const char *file, struct ynode **root,
		  struct kiln_err *err)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	struct ynode *stack[POL_MAX_DEPTH + 1];
	size_t depth = 0, nodes = 0;
	struct ynode *top = NULL;
	int ret = -KILN_EFORMAT;
	bool done = false, have_event = false;
	int docs = 0;

	*root = NULL;
	if (size > POL_MAX_INPUT_SIZE)
		return kiln_err_set(err, -EFBIG, "%s: policy is larger than %u bytes", file,
				    POL_MAX_INPUT_SIZE);
	if (memchr(text, '\0', size))
		return kiln_err_set(err, -KILN_EFORMAT, "%s: policy contains a NUL byte", file);
	if (!yaml_parser_initialize(&parser))
		return kiln_err_set(err, -ENOMEM, "%s: out of memory", file);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, size);
	while (!done) {
		struct ynode *n = NULL;

		if (!yaml_parser_parse(&parser, &ev)) {
			const yaml_mark_t *m = parser.problem_offset || parser.problem_mark.line ||
						       parser.problem_mark.column ?
					       &parser.problem_mark : &parser.context_mark;
			kiln_err_set(err, -KILN_EFORMAT, "%s:%zu:%zu: YAML syntax error: %s%s%s",
				     file, m->line + 1, m->column + 1,
				     parser.problem ? parser.problem : "invalid YAML",
				     parser.context ? " " : "",
				     parser.context ? parser.context : "");
			goto out;
		}
		have_event = true;
		switch (ev.type) {
		case YAML_STREAM_START_EVENT:
		case YAML_DOCUMENT_END_EVENT:
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1) {
				yn_fail(err, file, &ev.start_mark,
					"more than one YAML document (one policy per file)");
				goto out;
			}
			break;
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_ALIAS_EVENT:
			yn_fail(err, file, &ev.start_mark,
				"YAML aliases are not allowed in policies");
			goto out;
		case YAML_SCALAR_EVENT:
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT: {
			const unsigned char *anchor, *tag;
			bool implicit;

			if (ev.type == YAML_SCALAR_EVENT) {
				anchor = ev.data.scalar.anchor;
				tag = ev.data.scalar.tag;
				implicit = ev.data.scalar.plain_implicit ||
					   ev.data.scalar.quoted_implicit;
			} else if (ev.type == YAML_SEQUENCE_START_EVENT) {
				anchor = ev.data.sequence_start.anchor;
				tag = ev.data.sequence_start.tag;
				implicit = ev.data.sequence_start.implicit;
			} else {
				anchor = ev.data.mapping_start.anchor;
				tag = ev.data.mapping_start.tag;
				implicit = ev.data.mapping_start.implicit;
			}
			if (anchor) {
				yn_fail(err, file, &ev.start_mark,
					"YAML anchors are not allowed in policies");
				goto out;
			}
			if (tag && !implicit) {
				yn_fail(err, file, &ev.start_mark,
					"YAML tags are not allowed in policies");
				goto out;
			}
			if (++nodes > POL_MAX_NODES) {
				yn_fail(err, file, &ev.start_mark, "policy has too many nodes");
				goto out;
			}
			n = yn_new(ev.type == YAML_SCALAR_EVENT ? YN_SCALAR :
				   ev.type == YAML_SEQUENCE_START_EVENT ? YN_SEQ : YN_MAP,
				   &ev.start_mark);
			if (!n) {
				ret = kiln_err_set(err, -ENOMEM, "%s: out of memory", file);
				goto out;
			}
			if (ev.type == YAML_SCALAR_EVENT) {
				n->str = malloc(ev.data.scalar.length + 1);
				if (!n->str) {
					pol__yn_free(n);
					ret = kiln_err_set(err, -ENOMEM, "%s: out of memory", file);
					goto out;
				}
				memcpy(n->str, ev.data.scalar.value, ev.data.scalar.length);
				n->str[ev.data.scalar.length] = '\0';
				n->str_size = ev.data.scalar.length;
				n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
			}
			if (depth > 0) {
				if (yn_push(stack[depth - 1], n) < 0) {
					pol__yn_free(n);
					ret = kiln_err_set(err, -ENOMEM, "%s: out of memory", file);
					goto out;
				}
			} else if (!top) {
				top = n;
			} else {
				pol__yn_free(
					n); /* unreachable: libyaml emits one root per document */
			}
			if (ev.type != YAML_SCALAR_EVENT) {
				if (depth == POL_MAX_DEPTH) {
					yn_fail(err, file, &ev.start_mark,
						"policy is nested too deeply");
					goto out;
				}
				stack[depth++] = n;
			}
			break;
		}
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			if (depth > 0)
				depth--;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
		have_event = false;
	}
	if (!top) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "%s:1:1: policy is empty", file);
		goto out;
	}
	*root = top;
	top = NULL;
	ret = 0;
out:
	if (have_event)
		yaml_event_delete(&ev);
	yaml_parser_delete(&parser);
	pol__yn_free(top);
	return ret;
}
