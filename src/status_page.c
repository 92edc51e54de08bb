/* placeholder: being written */
typedef int pr_placeholder_status_page;
