/*
 * demo.c — the page of GET /demo/ (server/demo/index.html), embedded in the binary at build time by the assembler's
 * .incbin, so that acmd serves it with nothing installed beside it and the page needs no build step of its own: it is
 * plain HTML and JavaScript, same origin as the API it calls (/classify?explain=1, the WebSocket /stream), no CDN.
 * The Makefile makes demo.o depend on the HTML (the compiler's dependency files do not see .incbin).
 */
#include "acmd.h"

__asm__(".section .rodata\n"
        ".globl acmd__demo_html\n"
        "acmd__demo_html:\n"
        ".incbin \"server/demo/index.html\"\n"
        ".globl acmd__demo_html_end\n"
        "acmd__demo_html_end:\n"
        ".byte 0\n"
        ".previous\n");
extern const char acmd__demo_html[], acmd__demo_html_end[];

const char *acmd_demo_page(size_t *len) {
    *len = (size_t)(acmd__demo_html_end - acmd__demo_html);
    return acmd__demo_html;
}
