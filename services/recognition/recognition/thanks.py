"""Thank-you drafts that name what the member actually did: which thread, whom they helped, what they said.

A draft is for a community manager to send (or edit) privately. It picks the member's most echoed
contributions of different kinds and phrases each one from a small bank of sentences, chosen by a hash of
the member and the post, so two members (or two months) rarely get the same wording, yet the same history
gives the same draft.
"""

import hashlib
from collections.abc import Sequence
from typing import Any

COMPONENT_NAMES = {
    "infotainment": "车机", "body": "车门车身", "interior": "内饰异响", "hvac": "空调", "powertrain": "动力",
    "battery_charging": "续航充电", "chassis": "底盘刹车", "adas": "辅助驾驶", "electrical": "电器", "app": "手机app",
    "other": "这个问题",
}

# Placeholders: {title} thread title, {who} the member helped (or a neutral stand-in), {said} a short quote,
# {part} the component in plain words.
DEEDS: dict[str, tuple[str, ...]] = {
    "mediation": (
        "上次《{title}》里大家争起来的时候,幸亏有您出来圆场,帖子才没变成吵架。",
        "《{title}》那场争论,是您把两边的意思都摆平了,大家才冷静下来接着聊正事。",
        "那次《{title}》火药味很重,您一句“{said}”把气氛拉了回来,这份分寸很难得。",
    ),
    "newcomer_answer": (
        "{who}在《{title}》里求助的时候,是您耐心把办法一条条讲清楚的。",
        "您在《{title}》里给{who}的解答(“{said}”)帮了大忙,后来的新车主也一直在翻这条。",
        "新车主的问题再基础,您也回答得那么耐心,比如《{title}》里给{who}的那条回复。",
    ),
    "welcome": (
        "《{title}》里您一个个去欢迎新朋友,好几位潜水的车友就是因为您才开口说话的。",
        "您那句“{said}”,让刚来的{who}一下子就不觉得陌生了。",
    ),
    "empathy": (
        "{who}在《{title}》里最憋屈的时候,是您先站出来理解他、安慰他。",
        "您对{who}说的“{said}”,让一个正在气头上的车友感到被听见了。",
    ),
    "redirect_official": (
        "您在《{title}》里提醒{who}把情况整理好、走官方渠道,问题才真正进了处理流程。",
        "是您把{who}从干着急引到了能解决问题的渠道上(“{said}”),这比什么都实在。",
    ),
    "defect_hypothesis": (
        "您在《{title}》里对{part}问题的分析(“{said}”),让大家第一次把原因看明白了。",
        "关于{part}的那次讨论,您提出的思路后来被好几位车友验证了。",
    ),
    "defect_workaround": (
        "您在《{title}》里分享的办法(“{said}”),后来好几位车友都说管用。",
        "{part}的问题上,是您先试出了能缓解的方法,还毫无保留地分享给了大家。",
    ),
    "defect_report": (
        "您在《{title}》里把{part}的情况记录得清清楚楚,为大家排查省了很多功夫。",
    ),
}
OPENINGS = ("{name},", "{name}你好,", "亲爱的{name},", "{name},想特别跟您说一声谢谢。")
CLOSINGS = (
    "社区能这么温暖,离不开您这样的车友,真心谢谢!",
    "这些大家都看在眼里,谢谢您一直都在。",
    "您的付出我们都记着,辛苦了,也请照顾好自己。",
    "有您在,新老车友都更安心,谢谢!",
)
PRIORITY = ("mediation", "empathy", "newcomer_answer", "defect_workaround", "defect_hypothesis", "redirect_official",
            "welcome", "defect_report")


def _pick(options: Sequence[str], *keys: str) -> str:
    digest = hashlib.sha256("\x1f".join(keys).encode()).digest()
    return options[int.from_bytes(digest[:4], "big") % len(options)]


_TRAILING = (",", ",", "。", ".", "!", "!", " ")


def _quote(text: str, limit: int = 24) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit].rstrip("".join(_TRAILING)) + "…"


def choose(contributions: Sequence[dict[str, Any]], n: int = 2) -> list[dict[str, Any]]:
    """The most echoed contribution of each kind, up to `n` kinds, preferring labor over research."""
    best: dict[str, dict[str, Any]] = {}
    for c in contributions:
        seen = best.get(c["label"])
        if seen is None or (c["echo"], c["created_at"], c["post_id"]) > (seen["echo"], seen["created_at"],
                                                                            seen["post_id"]):
            best[c["label"]] = c
    ranked = sorted(best.values(), key=lambda c: (-c["echo"], PRIORITY.index(c["label"])
                                                  if c["label"] in PRIORITY else 99, c["post_id"]))
    return ranked[:n]


def draft(*, member_id: str, name: str | None, contributions: Sequence[dict[str, Any]]) -> tuple[str, list[str]]:
    picked = choose(contributions)
    display = name or "这位车友"
    if not picked:
        return (f"{display},谢谢您一直关注社区。最近还没有看到您帮助其他车友的帖子,"
                "这份草稿暂时没有可以具体感谢的内容。"), []
    parts = [_pick(OPENINGS, member_id, picked[0]["post_id"]).format(name=display)]
    for c in picked:
        sentence = _pick(DEEDS[c["label"]], member_id, c["post_id"], c["label"])
        parts.append(sentence.format(
            title=_quote(c.get("title") or "那个帖子", 18), who=c.get("target_name") or "那位车友",
            said=_quote(c.get("excerpt") or ""), part=COMPONENT_NAMES.get(c.get("component") or "other", "这个问题")))
    parts.append(_pick(CLOSINGS, member_id, picked[-1]["post_id"], "closing"))
    return "".join(parts), [c["post_id"] for c in picked]
