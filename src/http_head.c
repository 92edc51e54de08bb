/* placeholder: being written */
typedef int pr_placeholder_http_head;
