from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.events import Classification, Content, Text

Context = Annotated[Text, StringConstraints(max_length=20000)]


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    content: Content
    parent_content: Context | None = None
    title: Annotated[Text, StringConstraints(max_length=500)] | None = None


class BatchRequest(BaseModel):
    items: list[ClassifyRequest] = Field(min_length=1, max_length=1000)


class BatchResponse(BaseModel):
    results: list[Classification]
